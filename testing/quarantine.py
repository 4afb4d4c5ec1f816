"""Quarantined messages as ingest's scanner writes them, for the quarantine tools' tests."""

from __future__ import annotations

from shared.wire.records import ClientInfo, Quarantined, Submission, new_id

#: 2026-09-21T14:13:20Z: quarantined long before any test runs (older than a message's
#: maximum age), so a release that kept this time would expire at once.
AT = 1_790_000_000.0
DATA = (
    b"Received: from app.shop.test ([192.0.2.1]) by relay.test; Mon, 21 Sep 2026 14:13:19 +0000\r\n"
    b"From: App <app@shop.test>\r\n"
    b"To: <b@dest.test>\r\n"
    b"Subject: Cheap watches\r\n"
    b"Message-ID: <q1@shop.test>\r\n"
    b"\r\n"
    b"Buy now.\r\n"
)


def quarantined(
    message_id: str = "",
    *,
    tenant: str = "shop",
    sender: str = "app@shop.test",
    rcpt_to: tuple[str, ...] = ("b@dest.test", "c@dest.test"),
    data: bytes = DATA,
    at: float = AT,
    score: float = 9.5,
) -> Quarantined:
    """A message rspamd scored in the quarantine band, accepted a second before ``at``."""
    return Quarantined(
        submission=Submission(
            id=message_id or new_id(),
            received_at=at - 1.0,
            client=ClientInfo(ip="192.0.2.1", helo="app.shop.test", auth_user="shop-app"),
            mail_from=sender,
            rcpt_to=rcpt_to,
            data=data,
            tags={"campaign": "autumn"},
            tenant=tenant,
        ),
        at=at,
        action="add header",
        score=score,
        required=6.0,
        symbols={"BAYES_SPAM": 5.1, "R_SUSPICIOUS_URL": 2.5, "MIME_GOOD": -0.1, "FUZZY_X": 2.5},
        reference="ref-7f3a",
    )

"""The whole pipeline end to end: mail in over SMTP, signed copies out to sink MX hosts, the
feedback loop back in, observed through ``postline.events``, the suppression list and what
the sinks received. Each scenario runs on Kafka (four stage processes) and on the embedded
bus (``postline run``); see ``conftest.py``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from shared.wire.records import EventKind, Suppression, SuppressionReason
from shared.wire.tokens import parse_verp
from testing.harness import client, reports
from testing.harness.cluster import Cluster
from testing.smtpsink import Received

SENDER = "app@sender.test"
BODY = "Hello from the harness.\nSecond line.\n"
WIRE_BODY = BODY.replace("\n", "\r\n").encode()


def copies(cluster: Cluster, rcpt: str) -> list[Received]:
    """What the recipient's MX host accepted for ``rcpt``."""
    sink = cluster.sink(rcpt.rpartition("@")[2])
    return [m for m in sink.messages if rcpt in m.rcpt_tos]


def send(cluster: Cluster, rcpts: list[str], subject: str, *extra: str) -> client.Sent:
    """Submit over STARTTLS + AUTH and insist on 250."""
    data = client.message(SENDER, rcpts, subject, BODY, extra)
    sent = client.submit(cluster, SENDER, rcpts, data)
    assert sent.code == 250 and sent.message_id, sent
    return sent


def wait_copy(cluster: Cluster, rcpt: str, timeout: float = 30.0) -> Received:
    """The one copy ``rcpt`` received (after its DELIVERED event)."""
    cluster.events.wait_for(EventKind.DELIVERED, recipient=rcpt, timeout=timeout)
    [copy] = copies(cluster, rcpt)
    return copy


@dataclass(frozen=True)
class Delivered:
    """Scenario 1's message, reused by the feedback scenario (4)."""

    message_id: str
    alpha: Received
    beta: Received


@pytest.fixture(scope="module")
def delivered(cluster: Cluster) -> Delivered:
    """One message to two recipient domains, delivered."""
    sent = send(cluster, ["one@alpha.test", "two@beta.test"], "Scenario one")
    return Delivered(
        sent.message_id, wait_copy(cluster, "one@alpha.test"), wait_copy(cluster, "two@beta.test")
    )


def test_starttls_auth_to_two_domains_signed_and_verp(
    cluster: Cluster, delivered: Delivered
) -> None:
    counts = cluster.events.counts(delivered.message_id)
    assert counts == Counter(accepted=1, signed=1, delivered=2)
    secret = cluster.materials.secret
    for rcpt, copy in (("one@alpha.test", delivered.alpha), ("two@beta.test", delivered.beta)):
        assert client.body_of(copy.data) == WIRE_BODY
        assert client.header(copy.data, "Subject") == "Scenario one"
        assert client.dkim_algorithms(copy.data) == ["rsa-sha256", "ed25519-sha256"]
        assert client.verify_dkim(copy.data, cluster.ports.dns) == [True, True]
        token = parse_verp(copy.mail_from, secret)
        assert (token.message_id, token.recipient) == (delivered.message_id, rcpt)
        assert copy.mail_from.endswith("@" + cluster.options.bounce_domain)
    # alpha.test's MX offers STARTTLS: the deliverer used it, and says so in the event.
    assert delivered.alpha.tls and not delivered.beta.tls
    [event] = cluster.events.events(delivered.message_id, "one@alpha.test", [EventKind.DELIVERED])
    assert event.tls.startswith("TLSv1") and event.mx == "mx.alpha.test"


def test_4xx_then_2xx_is_deferred_once_and_delivered_once(cluster: Cluster) -> None:
    rcpt = "later@flaky.test"
    cluster.sink("flaky.test").script_rcpt(rcpt, "451 4.3.0 Mailbox busy, try again")
    sent = send(cluster, [rcpt], "Scenario two")
    copy = wait_copy(cluster, rcpt)
    counts = cluster.events.counts(sent.message_id)
    assert counts == Counter(accepted=1, signed=1, deferred=1, delivered=1)
    [deferred] = cluster.events.events(sent.message_id, rcpt, [EventKind.DEFERRED])
    [done] = cluster.events.events(sent.message_id, rcpt, [EventKind.DELIVERED])
    assert deferred.reply is not None and deferred.reply.code == 451
    assert (deferred.attempt, done.attempt) == (1, 2)
    assert client.body_of(copy.data) == WIRE_BODY
    assert client.verify_dkim(copy.data, cluster.ports.dns) == [True, True]


def test_5xx_bounces_suppresses_sends_dsn_and_ingest_then_suppresses(cluster: Cluster) -> None:
    rcpt = "gone@reject.test"
    cluster.sink("reject.test").script_rcpt(rcpt, "550 5.1.1 No such user here")
    sent = send(cluster, [rcpt], "Scenario three")
    [bounced] = cluster.events.wait_for(EventKind.BOUNCED, message_id=sent.message_id)
    assert bounced.reply is not None and bounced.reply.enhanced == "5.1.1"
    assert bounced.classification == "bounced" and bounced.stage == "deliverer"
    entry = wait_suppressed(cluster, rcpt)
    assert (entry.reason, entry.source) == (SuppressionReason.HARD_BOUNCE, "bouncer")
    # The bouncer's DSN to the sender, delivered to sender.test's MX with a null sender and
    # the original headers (the deliverer's bounced event carries them).
    dsn = wait_dsn(cluster, sent.message_id)
    assert dsn.mail_from in ("", "<>")
    assert b"report-type=delivery-status" in dsn.data
    assert b"Final-Recipient: rfc822; gone@reject.test" in dsn.data
    assert b"text/rfc822-headers" in dsn.data and b"Subject: Scenario three" in dsn.data
    assert cluster.events.counts(sent.message_id) == Counter(accepted=1, signed=1, bounced=1)
    assert copies(cluster, rcpt) == []
    if cluster.options.suppression == "refuse":
        assert_refused_at_rcpt(cluster, rcpt)
    else:
        assert_dropped_at_ingest(cluster, rcpt)
    assert copies(cluster, rcpt) == []


def wait_suppressed(cluster: Cluster, address: str, timeout: float = 30.0) -> Suppression:
    """The suppression entry for ``address`` once it is on the list."""
    found: list[Suppression] = []

    def listed(_: object) -> bool:
        entry = cluster.suppressions().get(address)
        if entry is not None:
            found.append(entry)
        return entry is not None

    cluster.events.wait(listed, timeout, f"{address} on the suppression list")
    return found[-1]


def wait_dsn(cluster: Cluster, message_id: str, timeout: float = 30.0) -> Received:
    """The DSN about ``message_id`` that reached the sender's MX host."""
    sink = cluster.sink(SENDER.rpartition("@")[2])
    marker = f"X-Postline-Id: {message_id}".encode()

    def arrived(_: object) -> bool:
        return any(marker in m.data for m in sink.messages)

    cluster.events.wait(arrived, timeout, f"a DSN about {message_id} at the sender's MX")
    [dsn] = [m for m in sink.messages if marker in m.data]
    assert dsn.rcpt_tos == (SENDER,)
    return dsn


def assert_refused_at_rcpt(cluster: Cluster, rcpt: str) -> None:
    """``refuse`` mode: 550 5.1.1 at RCPT once ingest's table has the entry, and an event."""

    def refused(_: object) -> bool:
        return client.rcpt_reply(cluster, SENDER, rcpt)[0] == 550

    cluster.events.wait(refused, 20.0, f"ingest refusing {rcpt}")
    code, text = client.rcpt_reply(cluster, SENDER, rcpt)
    assert (code, text) == (550, b"5.1.1 Recipient is on the suppression list")
    rejected = cluster.events.wait_for(EventKind.REJECTED, recipient=rcpt)
    assert all(e.check == "suppression" and e.stage == "ingest" for e in rejected)


def assert_dropped_at_ingest(cluster: Cluster, rcpt: str) -> None:
    """``drop`` mode: 250 for the message, a ``suppressed`` event from ingest, no Submission."""
    sent = send(cluster, [rcpt], "Scenario three again")
    [event] = cluster.events.wait_for(EventKind.SUPPRESSED, message_id=sent.message_id)
    assert (event.stage, event.recipient, event.check) == ("ingest", rcpt, "suppression")
    assert cluster.events.counts(sent.message_id) == Counter(suppressed=1)


def test_async_dsn_and_arf_complaint_to_the_bounce_domain(
    cluster: Cluster, delivered: Delivered
) -> None:
    port = cluster.ports.bounce_intake
    dsn = reports.dsn(
        delivered.alpha.mail_from, "one@alpha.test", delivered.alpha.data, "mx.alpha.test"
    )
    assert client.send_raw(port, "", delivered.alpha.mail_from, dsn)[0] == 250
    arf = reports.arf(
        delivered.beta.mail_from, "two@beta.test", delivered.beta.data, "fbl.beta.test"
    )
    assert client.send_raw(port, "", delivered.beta.mail_from, arf)[0] == 250
    [bounced] = cluster.events.wait_for(
        EventKind.BOUNCED, message_id=delivered.message_id, recipient="one@alpha.test"
    )
    [complaint] = cluster.events.wait_for(
        EventKind.COMPLAINED, message_id=delivered.message_id, recipient="two@beta.test"
    )
    assert bounced.stage == complaint.stage == "bouncer"
    assert bounced.classification == "hard" and bounced.reply is not None
    assert bounced.reply.enhanced == "5.1.1"
    assert wait_suppressed(cluster, "one@alpha.test").reason == SuppressionReason.HARD_BOUNCE
    assert wait_suppressed(cluster, "two@beta.test").reason == SuppressionReason.COMPLAINT
    assert cluster.events.counts(delivered.message_id) == Counter(
        accepted=1, signed=1, delivered=2, bounced=1, complained=1
    )
    # A forged report (wrong HMAC) is refused at RCPT and changes nothing.
    forged = delivered.alpha.mail_from.replace("-one=", "-other=")
    assert client.send_raw(port, "", forged, dsn)[0] == 550
    assert "other@alpha.test" not in cluster.suppressions()


def test_one_click_unsubscribe(cluster: Cluster) -> None:
    rcpt = "reader@beta.test"
    sent = send(cluster, [rcpt], "Scenario five", "X-Postline-Bulk: yes")
    copy = wait_copy(cluster, rcpt)
    assert client.header(copy.data, "List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    assert client.verify_dkim(copy.data, cluster.ports.dns) == [True, True]
    url = client.unsubscribe_url(copy.data)
    assert url.startswith(f"https://127.0.0.1:{cluster.ports.http[cluster.bouncer_http]}/")
    assert client.one_click(url) == 200
    [event] = cluster.events.wait_for(EventKind.UNSUBSCRIBED, message_id=sent.message_id)
    assert event.recipient == rcpt and event.stage == "bouncer"
    found = [s for s in cluster.suppressions().values() if s.address == rcpt]
    assert [s.reason for s in found] == [SuppressionReason.UNSUBSCRIBE]
    assert found[0].scope == "sender.test"
    assert cluster.events.counts(sent.message_id) == Counter(
        accepted=1, signed=1, delivered=1, unsubscribed=1
    )


def test_null_sender_from_trusted_relay_keeps_a_null_return_path(cluster: Cluster) -> None:
    rcpt = "auto@alpha.test"
    data = client.message(SENDER, [rcpt], "Automatic reply", BODY, ["Auto-Submitted: auto-replied"])
    sent = client.submit(cluster, "", [rcpt], data, relay=True)
    assert sent.code == 250 and sent.message_id, sent
    copy = wait_copy(cluster, rcpt)
    # RFC 5321 4.5.5: no VERP for a null reverse-path, so nothing can bounce back to it.
    assert copy.mail_from in ("", "<>")
    assert client.verify_dkim(copy.data, cluster.ports.dns) == [True, True]
    [accepted] = cluster.events.events(sent.message_id, kinds=[EventKind.ACCEPTED])
    assert accepted.sender == ""


def test_notify_success_produces_a_success_dsn(cluster: Cluster) -> None:
    # RFC 3461: beta.test's MX offers no DSN, so once it took the message Postline itself
    # tells the sender, with a "relayed" notice (5.2.2) carrying the ENVID and the ORCPT.
    rcpt = "notify@beta.test"
    data = client.message(SENDER, [rcpt], "Scenario notify", BODY, ())
    sent = client.submit(
        cluster,
        SENDER,
        [rcpt],
        data,
        mail_options=["RET=HDRS", "ENVID=order+2B42"],
        rcpt_options={rcpt: ["NOTIFY=SUCCESS", "ORCPT=rfc822;Notify@Beta.test"]},
    )
    assert sent.code == 250 and sent.message_id, sent
    wait_copy(cluster, rcpt)
    dsn = wait_dsn(cluster, sent.message_id)
    assert dsn.mail_from in ("", "<>")
    assert b"Action: relayed" in dsn.data and b"Status: 2.0.0" in dsn.data
    assert b"Original-Envelope-Id: order+42" in dsn.data
    assert b"Original-Recipient: rfc822;Notify@Beta.test" in dsn.data
    assert b"Final-Recipient: rfc822; notify@beta.test" in dsn.data
    assert b"Subject: Scenario notify" in dsn.data  # the original's headers
    # Its sending became a delivered event of its own, about the DSN's recipient.
    assert cluster.events.counts(sent.message_id) == Counter(accepted=1, signed=1, delivered=1)

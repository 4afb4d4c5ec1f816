"""One example event of every kind, as its writers fill it in: the examples of the
published schema and of ``docs/events.md``.

The values are invented but shaped like real ones (ids, replies, figures), and each
example fills in what a typical writer of its kind does (``shared.wire.eventkinds`` says
which fields each kind may carry). Tests validate them against the schema, and check the
writers themselves separately (``tests/shared/wire/test_eventkinds.py``). Nothing here is
read at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.wire.records import (
    Event,
    EventKind,
    SmtpReply,
    Tenant,
    TenantLimits,
    TenantState,
    TenantStatus,
)
from shared.wire.topics import TENANTS

AT = 1796637600.125  # 2026-12-07T10:00:00.125Z
MESSAGE = "5f0c8e2a9b1d4c7e8f3a6b2c1d0e9f8a"
DELIVERY = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
SENDER = "news@shop.example"
RECIPIENT = "alice@example.net"
TENANT = "acme"
TAGS = {"campaign": "winter-sale"}
MX = "mx1.example.net"

_MESSAGE: dict[str, Any] = {"message_id": MESSAGE, "tenant": TENANT}
_RECIPIENT: dict[str, Any] = {**_MESSAGE, "recipient": RECIPIENT, "domain": "example.net"}
_COPY: dict[str, Any] = {
    **_RECIPIENT,
    "delivery_id": DELIVERY,
    "sender": SENDER,
    "tags": TAGS,
    "bulk": True,
}
_ATTEMPT: dict[str, Any] = {
    **_COPY,
    "mx": MX,
    "provider": "other",
    "tls": "TLSv1.3",
    "tls_security": "mta-sts",
    "tls_verified": True,
    "tls_cipher": "TLS_AES_256_GCM_SHA384",
    "source": "192.0.2.25",
    "stage": "deliverer",
}
_REPORT: dict[str, Any] = {
    **_RECIPIENT,
    "mx": MX,
    "provider": "other",
    "stage": "bouncer",
    "original_recipient": "alice.smith@example.org",
}


def _tenant(state: TenantState) -> bytes:
    """An audit copy of a small tenant, as ``tenant_changed`` events carry it."""
    tenant = Tenant(
        id=TENANT,
        name="Acme Shop",
        status=TenantStatus(state=state, by="cli:ops", at=AT),
        limits=TenantLimits(per_day=50000),
        created_at=AT - 86400,
        updated_at=AT,
        revision=7,
    )
    return TENANTS.encode(tenant)


EXAMPLES: Mapping[EventKind, Event] = {
    event.kind: event
    for event in (
        Event(
            kind=EventKind.ACCEPTED,
            at=AT,
            **_MESSAGE,
            sender=SENDER,
            tls="TLSv1.3",
            credential="acme-app",
            tags=TAGS,
            recipients=2,
            recipient_domains=("example.net", "example.org"),
            stage="ingest",
            subject="Winter sale: 30% off everything",
        ),
        Event(
            kind=EventKind.REJECTED,
            at=AT,
            **_RECIPIENT,
            sender=SENDER,
            reply=SmtpReply(code=452, enhanced="4.5.3", text="Too many recipients"),
            tls="TLSv1.3",
            check="tenant_recipients",
            detail="client 198.51.100.7 on listener submission",
            credential="acme-app",
            stage="ingest",
        ),
        Event(
            kind=EventKind.SIGNED,
            at=AT,
            **_MESSAGE,
            sender=SENDER,
            check="dkim",
            detail="rsa-sha256 d=shop.example s=pl202612r, ed25519-sha256 d=shop.example "
            "s=pl202612e; 2 deliveries; bulk (tenant)",
            tags=TAGS,
            bulk=True,
            stage="signer",
        ),
        Event(
            kind=EventKind.DELIVERED,
            at=AT,
            **_ATTEMPT,
            reply=SmtpReply(code=250, enhanced="2.0.0", text="Ok: queued as 4Xk2Lq"),
            attempt=1,
            classification="delivered",
        ),
        Event(
            kind=EventKind.DEFERRED,
            at=AT,
            **_ATTEMPT,
            reply=SmtpReply(code=451, enhanced="4.7.1", text="Greylisted, try again later"),
            attempt=1,
            classification="deferred",
            reason="greylisted",
        ),
        Event(
            kind=EventKind.BOUNCED,
            at=AT,
            **_ATTEMPT,
            reply=SmtpReply(code=550, enhanced="5.1.1", text="No such user"),
            attempt=1,
            classification="bounced",
            reason="userunknown",
        ),
        Event(
            kind=EventKind.EXPIRED,
            at=AT,
            **_COPY,
            reply=SmtpReply(code=421, enhanced="4.4.7", text="Message expired"),
            attempt=9,
            classification="expired",
            reason="expired",
            detail="last reply: 421 4.4.2 Connection timed out",
            stage="deliverer",
        ),
        Event(
            kind=EventKind.COMPLAINED,
            at=AT,
            **_REPORT,
            classification="complaint",
            reason="feedback",
            check="arf:abuse",
            detail="ARF abuse report from feedback.example.net",
        ),
        Event(
            kind=EventKind.UNSUBSCRIBED,
            at=AT,
            **_RECIPIENT,
            detail="via one-click; scope shop.example",
            stage="bouncer",
        ),
        Event(
            kind=EventKind.SUPPRESSED,
            at=AT,
            **_RECIPIENT,
            sender=SENDER,
            check="suppression",
            tags=TAGS,
            credential="acme-app",
            bulk=True,
            stage="signer",
        ),
        Event(
            kind=EventKind.AUTO_REPLIED,
            at=AT,
            **_REPORT,
            classification="auto_reply",
            reason="vacation",
            check="rfc3834",
            detail="Auto-Submitted: auto-replied",
        ),
        Event(
            kind=EventKind.THROTTLED,
            at=AT,
            domain="example.net",
            provider="other",
            reply=SmtpReply(code=421, enhanced="4.7.0", text="Too many connections"),
            classification="throttle",
            detail="concurrency 2, 30/min, suspended 60s",
            stage="deliverer",
        ),
        Event(
            kind=EventKind.FAILED,
            at=AT,
            **_MESSAGE,
            sender=SENDER,
            check="dkim",
            detail="no DKIM key for shop.example and no fallback signing domain; "
            "allow_unsigned is off",
            tags=TAGS,
            stage="signer",
        ),
        Event(
            kind=EventKind.TENANT_CHANGED,
            at=AT,
            tenant=TENANT,
            by="cli:ops",
            detail="pause: bounce rate under review",
            stage="admin",
            before=_tenant(TenantState.ACTIVE),
            after=_tenant(TenantState.PAUSED),
        ),
        Event(
            kind=EventKind.REPUTATION,
            at=AT,
            tenant=TENANT,
            domain="shop.example",
            scope="domain",
            classification="warning",
            detail="bounce rate 6.2% over 1000 messages (warning at 5%)",
            figures={"sent": 1000.0, "hard_bounces": 62.0, "bounce_rate": 0.062},
            stage="reputation",
        ),
        Event(
            kind=EventKind.DEAD_LETTER,
            at=AT,
            classification="redriven",
            by="cli:ops",
            detail="postline.dead offset 42 (postline.submitted partition 3 offset 1777): redriven",
            stage="admin",
        ),
        Event(
            kind=EventKind.QUEUE_ACTION,
            at=AT,
            domain="example.net",
            classification="queue_flush",
            detail="domain:example.net",
            by="api:10.0.0.5",
            stage="api",
        ),
        Event(
            kind=EventKind.DELETED,
            at=AT,
            **_COPY,
            reply=SmtpReply(code=550, enhanced="5.0.0", text="Deleted by the operator"),
            attempt=3,
            classification="operator",
            check="queue_delete",
            detail="message:5f0c8e2a9b1d4c7e8f3a6b2c1d0e9f8a by cli:ops",
            by="cli:ops",
            stage="deliverer",
        ),
        Event(
            kind=EventKind.SCANNED,
            at=AT,
            **_MESSAGE,
            sender=SENDER,
            tls="TLSv1.3",
            credential="acme-app",
            check="rspamd",
            classification="tagged",
            detail=f"ref {MESSAGE}; action add header",
            figures={"score": 7.2, "required": 15.0},
            symbols={"BAYES_SPAM": 4.1, "MISSING_MID": 2.5},
            stage="ingest",
        ),
        Event(
            kind=EventKind.QUARANTINE,
            at=AT,
            **_MESSAGE,
            sender=SENDER,
            tags=TAGS,
            classification="released",
            check="rspamd",
            by="cli:ops",
            detail="false positive",
            figures={
                "score": 16.4,
                "required": 15.0,
                "quarantined_at": AT - 600,
                "received_at": AT - 601,
            },
            symbols={"GTUBE": 15.0, "MISSING_MID": 2.5},
            stage="admin",
        ),
        Event(
            kind=EventKind.CREDENTIAL,
            at=AT,
            tenant=TENANT,
            credential="acme-app",
            scope="credential",
            classification="held",
            detail="recipient domains per hour 412, 20 times its baseline of 20",
            figures={"domains": 412.0, "baseline": 20.0},
            by="reputation",
            stage="reputation",
        ),
        Event(
            kind=EventKind.OPENED,
            at=AT,
            **_RECIPIENT,
            agent="apple_mpp",
            machine=True,
            client_ip="17.58.101.5",
            stage="bouncer",
        ),
        Event(
            kind=EventKind.CLICKED,
            at=AT,
            **_RECIPIENT,
            url="https://shop.example/sale?utm_source=mail",
            link=2,
            agent="browser",
            client_ip="198.51.100.23",
            stage="bouncer",
        ),
        Event(
            kind=EventKind.TRACKING,
            at=AT,
            **_MESSAGE,
            sender=SENDER,
            tags=TAGS,
            classification="signed_content",
            detail="an S/MIME signed part: rewriting links would break its signature",
            stage="signer",
        ),
        Event(
            kind=EventKind.WEBHOOK,
            at=AT,
            tenant=TENANT,
            classification="paused",
            detail="wh_3f9a2c1d4e5b: 50 failures in a row (last: HTTP 503)",
            by="webhooks",
            stage="webhooks",
        ),
        Event(
            kind=EventKind.TLS_SESSION,
            at=AT,
            domain="example.net",
            mx=MX,
            mx_address="198.51.100.25",
            source="192.0.2.25",
            provider="other",
            tls="TLSv1.3",
            tls_cipher="TLS_AES_256_GCM_SHA384",
            tls_security="mta-sts",
            tls_failure="certificate-host-mismatch",
            tls_policy_domain="example.net",
            tls_policy_type="sts",
            tls_policy=("version: STSv1", "mode: enforce", "mx: *.example.net", "max_age: 86400"),
            tls_mx_patterns=("*.example.net",),
            detail=f"the certificate of {MX} does not name it",
            stage="deliverer",
        ),
    )
}

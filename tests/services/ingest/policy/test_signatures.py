"""The signed-changes check as a pure function: a DKIM-signed message ingest would break."""

from __future__ import annotations

from services.ingest.config import ContentConfig, IngestConfig, ListenerConfig
from services.ingest.headers import parse
from services.ingest.policy import message, signatures
from services.ingest.policy.base import Decision, PolicyState, SessionInfo, Transaction
from shared.suppressions import SuppressionTable
from shared.wire.records import ContentRules, Tenant, TenantSettings
from shared.wire.topics import TENANTS

RELAY = ListenerConfig(name="relay", mode="relay")
SIGNATURE = (
    b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=s1;\r\n"
    b"\th=from:to:subject:date:message-id; bh=AAAA; b=BBBB\r\n"
)
HEAD = (
    b"From: app@example.com\r\nTo: ann@dest.test\r\nSubject: hi\r\n"
    b"Date: Sun, 6 Dec 2026 21:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n"
)
SIGNED = SIGNATURE + HEAD + b"\r\nHello.\r\n"


def state(smuggling: str = "normalise", **content: object) -> PolicyState:
    config = IngestConfig(
        listeners=[RELAY],
        smuggling=smuggling,  # type: ignore[arg-type]
        content=ContentConfig(**content),  # type: ignore[arg-type]
    )
    st = PolicyState.create(config, SuppressionTable())
    own = Tenant(id="lax", settings=TenantSettings(content=ContentRules(signed_changes="allow")))
    st.tenants.apply(b"lax", TENANTS.encode(own))
    return st


def check(data: bytes, st: PolicyState, tenant: str = "acme") -> Decision | None:
    txn = Transaction(id="m1", mail_from="app@example.com", tenant=tenant)
    session = SessionInfo(ip="192.0.2.9", port=1234, listener=RELAY)
    return message.run(st, session, txn, data, parse(data))


def test_a_signed_message_ingest_leaves_alone_passes() -> None:
    assert check(SIGNED, state()) is None
    tagged = SIGNED.replace(HEAD, HEAD + b"X-Postline-Tag: welcome\r\n")
    assert check(tagged, state()) is None  # the tag is removed, but it was not signed


def test_normalising_bare_line_ends_of_a_signed_message_is_refused() -> None:
    bare = SIGNED.replace(b"Hello.\r\n", b"Hello.\nBye.\r\n")
    decision = check(bare, state())
    assert decision is not None and decision.check == "signed_changes"
    assert str(decision.reply) == (
        "550 5.6.0 Message is DKIM-signed and has bare CR or LF that ingest would rewrite to "
        "CRLF, which would break its signature"
    )
    assert check(bare, state(signed_changes="allow")) is None  # sent, normalised
    assert check(bare, state(), tenant="lax") is None  # the tenant's own rule
    unsigned = bare.replace(SIGNATURE, b"")
    assert check(unsigned, state()) is None  # nothing to break: normalised as configured
    # With smuggling = "refuse" the smuggling check refuses it first, signed or not.
    refused = check(bare, state(smuggling="refuse"))
    assert refused is not None and refused.check == "smuggling"


def test_signed_headers_ingest_removes_or_adds_are_refused() -> None:
    signs_tag = SIGNED.replace(b"message-id;", b"message-id:x-postline-tag;").replace(
        HEAD, HEAD + b"X-Postline-Tag: welcome\r\n"
    )
    decision = check(signs_tag, state())
    assert decision is not None
    assert "signs the x-postline-tag header, which ingest removes" in decision.reply.text
    no_id = SIGNED.replace(b"Message-ID: <1@example.com>\r\n", b"")
    decision = check(no_id, state())
    assert decision is not None
    assert "signs the absence of a message-id header, which ingest adds" in decision.reply.text
    oversigned = SIGNED.replace(b"h=from", b"h=received:from")
    decision = check(oversigned, state())
    assert decision is not None and "Received" in decision.reply.text
    with_received = oversigned.replace(HEAD, HEAD + b"Received: from a by b; x\r\n")
    assert check(with_received, state()) is None  # the signed one is there: ours goes above


def test_signed_fields_reads_the_h_tag() -> None:
    value = "v=1; a=rsa-sha256; h = From : to:From ; bh=x; b=y"
    assert signatures.signed_fields(value) == ["from", "to", "from"]
    assert signatures.signed_fields("v=1; bh=x") == []


def test_breaking_change_names_the_change_or_gives_empty() -> None:
    """The reason the reply quotes, for each change ingest makes, and "" (not None: the
    function returns text) when a signature survives ingest."""
    cases = [
        (SIGNED, True, ""),
        (SIGNED.replace(b"Hello.\r\n", b"Hello.\n"), False, ""),  # refused or kept as is
        (
            SIGNED.replace(b"Hello.\r\n", b"Hello.\rX\r\n"),
            True,
            "has bare CR or LF that ingest would rewrite to CRLF",
        ),
        (
            SIGNED.replace(b"Date: Sun, 6 Dec 2026 21:00:00 +0000\r\n", b""),
            True,
            "signs the absence of a date header, which ingest adds",
        ),
    ]
    for data, normalise, why in cases:
        msg = parse(data)
        result = signatures.breaking_change(
            data, msg, msg.get("dkim-signature"), normalise=normalise
        )
        assert result == why, data

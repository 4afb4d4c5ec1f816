"""Every record round-trips through its topic's codec, bytes intact, and old readers cope."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import DecodeError
from shared.wire.records import (
    ApiKey,
    ClientInfo,
    ControlAction,
    ControlVerb,
    Credential,
    DeadLetter,
    Delivery,
    DkimKeyRecord,
    Event,
    EventKind,
    SendingDomain,
    SmtpReply,
    Submission,
    Suppression,
    SuppressionReason,
    Tenant,
    TenantLimits,
    TenantSettings,
    TenantState,
    TenantStatus,
)
from shared.wire.topics import (
    CONTROL,
    DEAD,
    EVENTS,
    OUTBOUND,
    SUBMITTED,
    SUPPRESSIONS,
    TENANTS,
    all_topics,
    retry_topic,
    suppression_key,
)

# Addresses and headers may be UTF-8 (RFC 6531); bodies may be any octets (8BITMIME, binary).
addresses = st.builds(
    lambda local, domain: f"{local}@{domain}",
    st.text(min_size=1, max_size=30).filter(lambda s: "@" not in s),
    st.text(min_size=1, max_size=30).filter(lambda s: "@" not in s),
)
raw_messages = st.binary(max_size=4096) | st.builds(
    lambda subject, body: (
        f"Subject: {subject}\r\nFrom: Jöran <jöran@exämple.de>\r\n\r\n".encode() + body
    ),
    st.text(max_size=100),
    st.binary(max_size=2048),
)
timestamps = st.floats(min_value=0, max_value=4e9, allow_nan=False)
tags = st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=4)
replies = st.builds(
    SmtpReply, code=st.integers(200, 599), enhanced=st.text(max_size=9), text=st.text()
)

submissions = st.builds(
    Submission,
    id=st.text(min_size=1, max_size=40),
    received_at=timestamps,
    client=st.builds(ClientInfo, ip=st.ip_addresses().map(str), auth_user=st.none() | st.text()),
    mail_from=st.just("") | addresses,
    rcpt_to=st.lists(addresses, min_size=1, max_size=5).map(tuple),
    data=raw_messages,
    tags=tags,
    smtputf8=st.booleans(),
    body_8bit=st.booleans(),
)
deliveries = st.builds(
    Delivery,
    message_id=st.text(min_size=1),
    delivery_id=st.text(min_size=1),
    domain=st.text(min_size=1),
    mail_from=st.just("") | addresses,
    rcpt_to=st.lists(addresses, min_size=1, max_size=5).map(tuple),
    data=raw_messages,
    attempt=st.integers(0, 100),
    first_attempt_at=st.none() | timestamps,
    expires_at=timestamps,
    not_before=timestamps,
    last_reply=st.none() | replies,
    tags=tags,
)
events = st.builds(
    Event,
    kind=st.sampled_from(EventKind),
    message_id=st.text(),
    at=timestamps,
    recipient=st.just("") | addresses,
    reply=st.none() | replies,
    tags=tags,
    tenant=st.text(max_size=63),
    by=st.text(max_size=20),
    before=st.binary(max_size=256),
    after=st.binary(max_size=256),
)
suppressions = st.builds(
    Suppression,
    address=addresses,
    reason=st.sampled_from(SuppressionReason),
    at=timestamps,
    scope=st.text(max_size=20),
    tenant=st.text(max_size=20),
)
control_actions = st.builds(
    ControlAction,
    verb=st.sampled_from(ControlVerb),
    target=st.text(),
    at=timestamps,
    by=st.text(max_size=20),
)
dead_letters = st.builds(
    DeadLetter,
    topic=st.text(),
    partition=st.integers(0, 1000),
    offset=st.integers(0, 2**62),
    key=st.none() | st.binary(),
    value=st.none() | st.binary(max_size=1024),
    reason=st.text(),
    group=st.text(),
    at=timestamps,
)

dkim_keys = st.builds(
    DkimKeyRecord,
    selector=st.text(max_size=20),
    algorithm=st.sampled_from(["rsa", "ed25519"]),
    public_key=st.text(max_size=60),
    sealed_private_key=st.binary(max_size=200),
    created_at=timestamps,
    not_before=timestamps,
    not_after=timestamps,
)
tenants = st.builds(
    Tenant,
    id=st.text(min_size=1, max_size=63),
    name=st.text(max_size=40),
    status=st.builds(
        TenantStatus,
        state=st.sampled_from(TenantState),
        by=st.text(max_size=20),
        why=st.text(max_size=40),
        at=timestamps,
    ),
    domains=st.lists(
        st.builds(
            SendingDomain,
            name=st.text(min_size=1, max_size=30),
            verified=st.booleans(),
            verified_at=timestamps,
            bounce_domain=st.text(max_size=30),
            dkim=st.lists(dkim_keys, max_size=2).map(tuple),
        ),
        max_size=3,
    ).map(tuple),
    credentials=st.lists(
        st.builds(
            Credential,
            name=st.text(min_size=1, max_size=30),
            secret=st.text(max_size=80),
            created_at=timestamps,
            domains=st.lists(st.text(max_size=20), max_size=2).map(tuple),
        ),
        max_size=3,
    ).map(tuple),
    api_keys=st.lists(
        st.builds(
            ApiKey,
            id=st.text(min_size=1, max_size=11),
            hash=st.text(max_size=64),
            created_at=timestamps,
            name=st.text(max_size=20),
            revoked_at=timestamps,
        ),
        max_size=3,
    ).map(tuple),
    limits=st.builds(
        TenantLimits,
        per_second=st.floats(min_value=0, max_value=1e6, allow_nan=False),
        burst=st.integers(0, 2**31),
        per_hour=st.integers(0, 2**40),
        per_day=st.integers(0, 2**40),
        per_month=st.integers(0, 2**40),
        recipients_per_message=st.integers(0, 10_000),
        message_size=st.integers(0, 2**40),
        sessions=st.integers(0, 10_000),
    ),
    ip_pool=st.text(max_size=20),
    settings=st.builds(TenantSettings, paused_reply=st.sampled_from(["reject", "defer"])),
    created_at=timestamps,
    updated_at=timestamps,
    revision=st.integers(0, 2**40),
)


@settings(max_examples=150)
@given(st.data())
def test_every_record_round_trips(data: st.DataObject) -> None:
    for topic, strategy in [
        (SUBMITTED, submissions),
        (OUTBOUND, deliveries),
        (EVENTS, events),
        (SUPPRESSIONS, suppressions),
        (CONTROL, control_actions),
        (DEAD, dead_letters),
        (TENANTS, tenants),
    ]:
        record = data.draw(strategy)
        wire = topic.encode(record)  # type: ignore[arg-type]
        assert topic.decode(wire) == record


@given(submissions)
def test_message_bytes_stay_bytes(submission: Submission) -> None:
    decoded = SUBMITTED.decode(SUBMITTED.encode(submission))
    assert isinstance(decoded.data, bytes)
    assert decoded.data == submission.data


def test_eight_bit_and_smtputf8_content_is_byte_exact() -> None:
    raw = (
        "From: Jöran <jöran@exämple.de>\r\nTo: 用户@例子.测试\r\nSubject: Grüße\r\n\r\n".encode()
        + b"\xe9t\xe9 \xff\xfe raw 8-bit\r\n"
    )
    submission = Submission(
        id="m1",
        received_at=1.0,
        client=ClientInfo(ip="127.0.0.1"),
        mail_from="jöran@exämple.de",
        rcpt_to=("用户@例子.测试",),
        data=raw,
        smtputf8=True,
        body_8bit=True,
    )
    assert SUBMITTED.decode(SUBMITTED.encode(submission)).data == raw


def test_a_newer_writer_with_unknown_fields_is_still_readable() -> None:
    class EventV2(msgspec.Struct, kw_only=True):
        schema: int = 2
        kind: str
        at: float
        message_id: str
        brand_new_field: list[int]

    wire = msgspec.msgpack.encode(
        EventV2(kind="delivered", at=5.0, message_id="m", brand_new_field=[1])
    )
    event = EVENTS.decode(wire)
    assert event.kind is EventKind.DELIVERED
    assert event.schema == 2


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\xc1",
        b"\x93\x01\x02\x03",
        msgspec.msgpack.encode({"id": 5}),
        # A string that is not UTF-8 (a lone surrogate as CESU-8): msgspec raises
        # UnicodeDecodeError, not its DecodeError; it once killed the consumer loop.
        msgspec.msgpack.encode({"id": "SURR"}).replace(b"SURR", b"\xed\xa0\x80z"),
    ],
)
def test_undecodable_bytes_raise_decode_error_naming_the_topic(garbage: bytes) -> None:
    with pytest.raises(DecodeError, match=r"postline\.submitted"):
        SUBMITTED.decode(garbage)


def test_topics_declare_keys_and_settings() -> None:
    names = [t.name for t in all_topics()]
    assert names[:11] == [
        "postline.submitted",
        "postline.outbound",
        "postline.outbound.bulk",
        "postline.events",
        "postline.suppressions",
        "postline.tenants",
        "postline.control",
        "postline.reputation",
        "postline.queue",
        "postline.queue.live",
        "postline.dead",
    ]
    assert "postline.retry.5m" in names
    assert SUPPRESSIONS.config["cleanup.policy"] == "compact"
    assert CONTROL.config["cleanup.policy"] == "compact"
    assert OUTBOUND.config["cleanup.policy"] == "delete"
    assert int(OUTBOUND.config["max.message.bytes"]) >= 32 * 1024 * 1024
    delivery = Delivery(
        message_id="m",
        delivery_id="d",
        domain="example.org",
        mail_from="",
        rcpt_to=("a@example.org",),
        data=b"x",
    )
    assert OUTBOUND.key(delivery) == b"example.org"
    assert retry_topic("1m").key(delivery) == b"example.org"
    assert suppression_key("A@Example.org") == "a@example.org"
    assert suppression_key("A@Example.org", "Shop.Example") == "shop.example|a@example.org"
    # Tenant entries are a new key space: the keys above (records already written) never move.
    assert suppression_key("A@Example.org", tenant="t1") == "tenant:t1|a@example.org"
    assert suppression_key("a@example.org", "shop.example", "t1") == (
        "tenant:t1|shop.example|a@example.org"
    )

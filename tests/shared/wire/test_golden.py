"""Golden vectors: the exact bytes of every wire record and token, checked in.

Records on topics outlive the code that wrote them (compacted tables keep them for ever,
retry tiers for days, a rolling upgrade runs old and new replicas side by side), and every
VERP return path and unsubscribe link already sent carries a token that must keep
verifying. So the encodings are pinned byte for byte: fixed inputs here, their expected
bytes (hex) in ``golden/records.json`` and ``golden/tokens.json``. A change of format fails
these tests loudly instead of passing unnoticed.

What is pinned:

- each topic's record type (Submission, Delivery, Event, Suppression, Tenant, ControlAction,
  QueueEntry, QueueSnapshot, Reputation, Quarantined, DeadLetter, DeadLetterState,
  MtaStsPolicy) encoded
  with its topic's codec, once with every field (nested ones too) set away from its default
  and once with only the required fields, plus the record's partitioning key; the golden
  bytes decode back to the same record;
- the forward compatibility rule of ``shared.wire.records``: bytes holding only the required
  fields (what a writer from before the newest fields wrote) still decode, the other fields
  taking their defaults, and a field a newer writer added is ignored by this reader;
- VERP return paths and unsubscribe tokens for fixed secrets and inputs, and that the golden
  strings still verify and decode.

- tracking tokens (the open pixel's and rewritten links') for fixed secrets and inputs.

Not pinned here: webhook signatures, which follow the Standard Webhooks specification and
are checked against its own test vectors where they are made.

Changing a format on purpose:

- records: add a field only with a default (never change a field's type or meaning). Then
  the old vectors still decode: regenerate, and check the diff of ``golden/records.json``
  only adds the new field's bytes. A change old readers cannot read needs
  ``SCHEMA_VERSION`` bumped in ``shared/wire/records.py`` and a plan for records in flight;
- tokens: they carry no version of their own, and any change (MAC length, HMAC input,
  encoding, the ``.lower()`` of VERP recipients) invalidates every address and link already
  sent. A new format needs a version marker the parser can tell apart, and the parser must
  keep accepting the old tokens: keep their vectors in ``golden/tokens.json`` (as
  ``verp_*``/``unsubscribe_*`` entries) and add the new ones beside them.

Regenerate (rewrites both files from the inputs below; review the diff before committing)::

    PYTHONPATH=. .venv/bin/python -m tests.shared.wire.test_golden --regenerate
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from shared.errors import ForgedToken
from shared.wire import records as wire
from shared.wire.records import (
    ApiKey,
    ClientInfo,
    ContentRules,
    ControlAction,
    ControlVerb,
    Credential,
    CredentialBucket,
    CredentialWindow,
    DeadLetter,
    DeadLetterState,
    Delivery,
    DkimKeyRecord,
    Event,
    EventKind,
    MtaStsPolicy,
    Quarantined,
    QueueEntry,
    QueueLoad,
    QueueSnapshot,
    RecipientDsn,
    Record,
    Reputation,
    ReputationBucket,
    ReputationCounts,
    ReputationThresholds,
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
    TlsRpt,
    TlsRptFailure,
    TlsRptPolicy,
    TrackingSettings,
    WarmupState,
    WebhookAttempt,
    WebhookEndpoint,
)
from shared.wire.tokens import (
    TrackingToken,
    UnsubscribeToken,
    VerpToken,
    parse_tracking_token,
    parse_unsubscribe_token,
    parse_verp,
    tracking_token,
    unsubscribe_token,
    verp_address,
)
from shared.wire.topics import (
    CONTROL,
    DEAD,
    DEAD_STATE,
    EVENTS,
    MTA_STS,
    OUTBOUND,
    QUARANTINE,
    QUEUE,
    QUEUE_LIVE,
    REPUTATION,
    SUBMITTED,
    SUPPRESSIONS,
    TENANTS,
    TLSRPT,
    Topic,
    all_topics,
    webhook_retry_topic,
)

GOLDEN = Path(__file__).parent / "golden"
RECORDS_FILE = GOLDEN / "records.json"
TOKENS_FILE = GOLDEN / "tokens.json"

MSGID = "0123456789abcdef0123456789abcdef"
DELIVERY_ID = "fedcba9876543210fedcba9876543210"
AT = 1_767_225_600.25  # 2026-01-01T00:00:00.25Z: a fraction, so floats stay floats

CLIENT = ClientInfo(
    ip="192.0.2.10",
    port=49152,
    helo="client.example.net",
    auth_user="alice",
    tls="TLSv1.3",
    listener="submission",
)
REPLY = SmtpReply(code=451, enhanced="4.7.1", text="Greylisted, try again")
EVENT = Event(
    schema=1,
    kind=EventKind.DEFERRED,
    message_id=MSGID,
    at=AT,
    recipient="bob@example.org",
    domain="example.org",
    delivery_id=DELIVERY_ID,
    sender="alice@example.com",
    reply=REPLY,
    mx="mx1.example.org",
    provider="example",
    tls="TLSv1.3",
    attempt=2,
    classification="greylisted",
    check="deliverer",
    detail="retry in 5m",
    tags={"campaign": "spring"},
    stage="deliverer",
    headers=b"Subject: hi\r\n",
    bulk=True,
    tenant="acme",
    by="ops",
    before=b"\x81\xa2id\xa4acme",
    after=b"\x81\xa2id\xa5acme2",
    source="198.51.100.7",
    scope="domain",
    figures={"bounce_rate": 0.125, "sent": 800.0},
    credential="alice",
    symbols={"BAYES_SPAM": 5.5},
    recipients=2,
    recipient_domains=("example.org", "exämple.de"),
    reason="userunknown",
    original_recipient="rfc822;Bob@Example.org",
    url="https://example.com/spring?utm=1",
    link=3,
    agent="browser",
    machine=True,
    client_ip="203.0.113.9",
    tls_security="mta-sts",
    tls_verified=True,
    tls_cipher="TLS_AES_256_GCM_SHA384",
    mx_address="192.0.2.25",
    tls_failure="certificate-host-mismatch",
    tls_policy_domain="example.org",
    tls_policy_type="sts",
    tls_policy=("version: STSv1", "mode: enforce", "mx: *.example.org", "max_age: 86400"),
    tls_mx_patterns=("*.example.org",),
    dsn_notify=("SUCCESS", "DELAY"),
    dsn_orcpt="rfc822;Bob@Example.org",
    dsn_ret="HDRS",
    dsn_envid="QQ314159",
    dsn_passed=True,
    requiretls=True,
    subject="Spring sale: ünder 10€",
)
SUBMISSION = Submission(
    schema=1,
    id=MSGID,
    received_at=AT,
    client=CLIENT,
    mail_from="alice@example.com",
    rcpt_to=("bob@example.org", "Jöran@exämple.de"),
    data=b"Subject: hi\r\nFrom: alice@example.com\r\n\r\nbody \xff\x00 bytes\r\n",
    tags={"campaign": "spring", "x": "1"},
    smtputf8=True,
    body_8bit=True,
    tenant="acme",
    send_at=AT + 3600,
    dsn_ret="HDRS",
    dsn_envid="QQ314159",
    dsn={
        "bob@example.org": RecipientDsn(
            notify=("SUCCESS", "FAILURE"), orcpt="rfc822;Bob@Example.org"
        )
    },
    require_tls=True,
    requiretls=True,
    tls_optional=True,
    events=(EVENT,),
)
DKIM_KEY = DkimKeyRecord(
    selector="s2026",
    algorithm="ed25519",
    public_key="MCowBQYDK2VwAyEA",
    sealed_private_key=b"\x00\x01nonce-and-ciphertext\xfe",
    created_at=AT,
    not_before=AT + 1,
    not_after=AT + 86400,
)
PAUSED = TenantStatus(state=TenantState.PAUSED, by="ops", why="bounce rate", at=AT)

# Every record type of a topic with every field set away from its default (the completeness
# test below checks that, nested structs included), and with only its required fields.
FULL: dict[str, tuple[Topic[Any], Record]] = {
    "Submission": (SUBMITTED, SUBMISSION),
    "Delivery": (
        OUTBOUND,
        Delivery(
            schema=1,
            message_id=MSGID,
            delivery_id=DELIVERY_ID,
            domain="example.org",
            mail_from="b+token-bob=example.org@bounces.example.com",
            rcpt_to=("bob@example.org",),
            data=b"DKIM-Signature: v=1\r\n\r\nbody\r\n",
            sender="alice@example.com",
            attempt=3,
            submitted_at=AT,
            first_attempt_at=AT + 1,
            last_attempt_at=AT + 2,
            expires_at=AT + 5 * 86400,
            not_before=AT + 300,
            tags={"campaign": "spring"},
            smtputf8=True,
            body_8bit=True,
            bulk=True,
            is_dsn=True,
            last_reply=REPLY,
            tenant="acme",
            send_at=AT + 60,
            indexed=True,
            dsn_ret="FULL",
            dsn_envid="QQ314159",
            dsn={
                "bob@example.org": RecipientDsn(notify=("DELAY",), orcpt="rfc822;bob@example.org")
            },
            require_tls=True,
            requiretls=True,
            tls_optional=True,
        ),
    ),
    "Event": (EVENTS, EVENT),
    "Suppression": (
        SUPPRESSIONS,
        Suppression(
            schema=1,
            address="bob@example.org",
            reason=SuppressionReason.UNSUBSCRIBE,
            source="bouncer",
            at=AT,
            scope="example.com",
            detail="List-Unsubscribe-Post",
            tenant="acme",
            bounce_reason="userunknown",
            method="one_click",
            proof="8f1c2a9d0b7e6f5a4c3d",
            message_id=MSGID,
            address_hash="5d41402abc4b2a76b9719d911017c592" * 2,
        ),
    ),
    "Tenant": (
        TENANTS,
        Tenant(
            schema=1,
            id="acme",
            name="ACME Corp",
            status=PAUSED,
            domains=(
                SendingDomain(
                    name="example.com",
                    verified=True,
                    verified_at=AT,
                    bounce_domain="rp.example.com",
                    dkim=(DKIM_KEY,),
                    status=PAUSED,
                    ip_pool="transactional",
                    tracking=TrackingSettings(
                        opens=True, clicks=False, text_clicks=True, host="t.example.com"
                    ),
                ),
            ),
            credentials=(
                Credential(
                    name="alice",
                    secret="scrypt$16384$8$1$c2FsdA$aGFzaA",
                    created_at=AT,
                    domains=("example.com",),
                ),
            ),
            api_keys=(
                ApiKey(
                    id="pl_3f9a2c1d",
                    hash="ab" * 32,
                    created_at=AT,
                    name="ci",
                    revoked_at=AT + 10,
                ),
            ),
            limits=TenantLimits(
                per_second=2.5,
                burst=10,
                per_hour=1000,
                per_day=20000,
                per_month=500000,
                recipients_per_message=50,
                message_size=10 * 1024 * 1024,
                sessions=4,
            ),
            ip_pool="shared",
            settings=TenantSettings(
                paused_reply="defer",
                bulk=True,
                bulk_ip_pool="bulk",
                reputation=ReputationThresholds(
                    bounce_warning=0.02,
                    bounce_pause=0.05,
                    complaint_warning=0.001,
                    complaint_pause=0.003,
                    block_warning=0.1,
                    block_pause=0.2,
                    min_messages=500,
                ),
                scanning="tag",
                content=ContentRules(
                    blocked_extensions=("js",),
                    allowed_extensions=("msi",),
                    max_attachment_size=5_000_000,
                    max_attachments=5,
                    signed_changes="allow",
                ),
                tracking=TrackingSettings(
                    opens=False, clicks=True, text_clicks=False, host="t.acme.example"
                ),
                require_tls=True,
                retention_days=90,
            ),
            created_at=AT,
            updated_at=AT + 100,
            revision=7,
            webhooks=(
                WebhookEndpoint(
                    id="wh_0123456789ab",
                    url="https://hooks.example.com/postline",
                    sealed_secret=b"\x01" * 60,
                    created_at=AT,
                    kinds=("delivered", "bounced"),
                    batch=50,
                    description="CRM",
                    status=PAUSED,
                ),
            ),
        ),
    ),
    "ControlAction": (
        CONTROL,
        ControlAction(
            schema=1,
            verb=ControlVerb.QUEUE_SUSPEND,
            target="domain:example.org",
            at=AT,
            by="ops",
            until=AT + 3600,
            why="provider outage",
            domains=("example.org",),
        ),
    ),
    "QueueEntry": (
        QUEUE,
        QueueEntry(
            schema=1,
            message_id=MSGID,
            delivery_id=DELIVERY_ID,
            domain="example.org",
            recipients=("bob@example.org",),
            at=AT,
            sender="alice@example.com",
            tenant="acme",
            provider="example",
            source="198.51.100.7",
            bulk=True,
            is_dsn=True,
            size=2048,
            attempt=2,
            submitted_at=AT - 600,
            first_attempt_at=AT - 590,
            last_attempt_at=AT - 10,
            next_attempt=AT + 300,
            expires_at=AT + 86400,
            tier="postline.retry.5m",
            reason="deferred",
            detail="451 4.7.1 Greylisted",
            last_reply=REPLY,
            copy_topic="postline.outbound",
            copy_partition=3,
            copy_offset=12345,
        ),
    ),
    "QueueSnapshot": (
        QUEUE_LIVE,
        QueueSnapshot(
            schema=1,
            instance="deliverer-0",
            at=AT,
            interval=5.0,
            loads=(
                QueueLoad(
                    domain="example.org",
                    provider="example",
                    tenant="acme",
                    source="198.51.100.7",
                    lane="bulk",
                    window=4,
                    in_flight=2,
                    oldest=AT - 60,
                    last_error="421 too many connections",
                    last_error_at=AT - 5,
                    throttled_until=AT + 120,
                ),
            ),
            pending={"postline.outbound": 6, "postline.outbound.bulk": 1},
            truncated=2,
            stopped=True,
        ),
    ),
    "Reputation": (
        REPUTATION,
        Reputation(
            schema=1,
            key="credential|alice",
            scope="credential",
            tenant="acme",
            domain="example.com",
            provider="example",
            address="198.51.100.7",
            buckets=(
                ReputationBucket(
                    hour=490896,
                    counts=ReputationCounts(
                        sent=100,
                        delivered=90,
                        hard_bounces=3,
                        soft_bounces=2,
                        blocks=1,
                        complaints=1,
                        unsubscribes=4,
                        deferred=5,
                    ),
                ),
            ),
            level="warning",
            level_since=AT - 3600,
            warmup=WarmupState(
                step=3,
                day=20454,
                allowance=5000,
                sent=1200,
                deferred=10,
                bounced=4,
                complained=1,
                started_day=20450,
                health="holding",
                changed_at=AT,
            ),
            updated_at=AT,
            credential=CredentialWindow(
                bucket=300.0,
                buckets=(
                    CredentialBucket(
                        index=5890752,
                        messages=40,
                        recipients=80,
                        domains=12,
                        scanned=40,
                        spam=3,
                        hard_bounces=2,
                    ),
                ),
                newest_domains=("example.org",),
                held=True,
                held_since=AT,
                why="recipients 10x baseline",
            ),
        ),
    ),
    "Quarantined": (
        QUARANTINE,
        Quarantined(
            schema=1,
            submission=SUBMISSION,
            at=AT,
            scanner="other",
            action="add header",
            score=7.5,
            required=6.0,
            symbols={"BAYES_SPAM": 5.5, "URIBL": 2.0},
            reference="q-1234",
        ),
    ),
    "DeadLetter": (
        DEAD,
        DeadLetter(
            schema=1,
            topic="postline.submitted",
            partition=4,
            offset=99,
            key=b"key\x00",
            value=b"\xc1not msgpack",
            reason="postline.submitted: cannot decode Submission",
            group="signer",
            at=AT,
        ),
    ),
    "DeadLetterState": (
        DEAD_STATE,
        DeadLetterState(
            schema=1,
            partition=0,
            offset=17,
            topic="postline.submitted",
            state="redriven",
            at=AT,
            by="ops",
            note="fixed upstream",
        ),
    ),
    "MtaStsPolicy": (
        MTA_STS,
        MtaStsPolicy(
            schema=1,
            domain="example.org",
            policy_id="20261207T0000",
            mode="enforce",
            max_age=604800,
            mx=("mx1.example.org", "*.mail.example.org"),
            lines=(
                "version: STSv1",
                "mode: enforce",
                "mx: mx1.example.org",
                "mx: *.mail.example.org",
                "max_age: 604800",
            ),
            fetched_at=AT,
        ),
    ),
    "WebhookAttempt": (
        webhook_retry_topic("30s"),
        WebhookAttempt(
            schema=1,
            tenant="acme",
            endpoint="wh_0123456789ab",
            event_id="evt_0123456789abcdef0123456789abcdef",
            payload=b'{"id":"evt_0123456789abcdef0123456789abcdef","type":"delivered"}',
            event_at=AT,
            attempt=3,
            first_at=AT + 1,
            not_before=AT + 91,
            error="HTTP 503",
        ),
    ),
    "TlsRpt": (
        TLSRPT,
        TlsRpt(
            schema=1,
            domain="example.org",
            day="2023-11-14",
            state="sent",
            partition=7,
            policies=(
                TlsRptPolicy(
                    policy_type="sts",
                    policy_strings=("version: STSv1", "mode: enforce"),
                    mx_patterns=("*.example.org",),
                    successful=40,
                    failed=2,
                    failures=(
                        TlsRptFailure(
                            result_type="certificate-expired",
                            sending_mta_ip="192.0.2.10",
                            receiving_mx_hostname="mx1.example.org",
                            receiving_ip="198.51.100.25",
                            failure_reason_code="certificate has expired",
                            count=2,
                        ),
                    ),
                ),
            ),
            updated_at=AT,
            report_id="5065427c-23d3-47ca-b6e0-946ea0e8c4be",
            detail="https://reports.example.org/tlsrpt",
        ),
    ),
}

MINIMAL: dict[str, Record] = {
    "Submission": Submission(
        id=MSGID,
        received_at=AT,
        client=ClientInfo(ip="192.0.2.10"),
        mail_from="",
        rcpt_to=("bob@example.org",),
        data=b"\r\n",
    ),
    "Delivery": Delivery(
        message_id=MSGID,
        delivery_id=DELIVERY_ID,
        domain="example.org",
        mail_from="",
        rcpt_to=("bob@example.org",),
        data=b"\r\n",
    ),
    "Event": Event(kind=EventKind.ACCEPTED, at=AT),
    "Suppression": Suppression(address="bob@example.org", reason=SuppressionReason.MANUAL, at=AT),
    "Tenant": Tenant(id="acme"),
    "ControlAction": ControlAction(verb=ControlVerb.AUTH_UNBLOCK, target="192.0.2.10", at=AT),
    "QueueEntry": QueueEntry(
        message_id=MSGID,
        delivery_id=DELIVERY_ID,
        domain="example.org",
        recipients=("bob@example.org",),
        at=AT,
    ),
    "QueueSnapshot": QueueSnapshot(instance="deliverer-0", at=AT, interval=5.0),
    "Reputation": Reputation(key="tenant|acme", scope="tenant"),
    "Quarantined": Quarantined(submission=SUBMISSION, at=AT),
    "DeadLetter": DeadLetter(
        topic="postline.events",
        partition=0,
        offset=0,
        key=None,
        value=None,
        reason="empty",
        group="bouncer",
        at=AT,
    ),
    "DeadLetterState": DeadLetterState(partition=0, offset=0, state="purged", at=AT),
    "MtaStsPolicy": MtaStsPolicy(
        domain="example.org", policy_id="1", mode="none", max_age=86400, fetched_at=AT
    ),
    "WebhookAttempt": WebhookAttempt(tenant="t", endpoint="wh_1", event_id="evt_1", payload=b"{}"),
    "TlsRpt": TlsRpt(domain="example.org", day="2023-11-14"),
}

# Token inputs: (secret, local, bounce domain, message id, recipient) and
# (secret, recipient, scope, message id). Mixed case and UTF-8 on purpose: the VERP MAC is
# over the lower-cased recipient, the address keeps the case it was given.
SECRET = b"golden-vector-secret-0123456789"
VERP_INPUTS: dict[str, tuple[bytes, str, str, str, str]] = {
    "verp_plain": (SECRET, "b", "bounces.example.com", MSGID, "bob@example.org"),
    "verp_mixed_case": (SECRET, "bounce", "rp.example.com", DELIVERY_ID, "Bob.Smith@Example.ORG"),
    "verp_utf8": (b"\x00\xff" * 16, "b", "bounces.example.com", MSGID, "jöran@exämple.de"),
}
TRACKING_INPUTS: dict[str, tuple[bytes, TrackingToken]] = {
    "tracking_open": (SECRET, TrackingToken(MSGID, "bob@example.org", "acme", 1_700_000_000)),
    "tracking_click": (
        SECRET,
        TrackingToken(
            DELIVERY_ID,
            "Bob@Example.org",
            "default",
            1_765_000_000,
            link=2,
            url="https://example.com/spring?utm_source=mail&x=%C3%A4#top",
        ),
    ),
    "tracking_utf8": (
        b"\x00\xff" * 16,
        TrackingToken(MSGID, "jöran@exämple.de", "acme", 0, link=1, url="https://exämple.de/ö"),
    ),
}
UNSUBSCRIBE_INPUTS: dict[str, tuple[bytes, str, str, str]] = {
    "unsubscribe_scoped": (SECRET, "bob@example.org", "example.com", MSGID),
    "unsubscribe_all": (SECRET, "Bob@Example.org", "", DELIVERY_ID),
    "unsubscribe_utf8": (b"\x00\xff" * 16, "jöran@exämple.de", "exämple.de", MSGID),
}


def required_only(record: Record) -> bytes:
    """The record as a writer knowing only its required fields wrote it (the oldest form)."""
    fields = {
        name: getattr(record, name)
        for name, default in zip(record.__struct_fields__, _defaults(type(record)), strict=True)
        if default is msgspec.NODEFAULT
    }
    return msgspec.msgpack.encode(fields)


def _defaults(cls: type[msgspec.Struct]) -> list[Any]:
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    return [
        f.default if f.default_factory is msgspec.NODEFAULT else f.default_factory()
        for f in info.fields
    ]


def generate_records() -> dict[str, dict[str, str]]:
    """The golden record vectors from the inputs above."""
    out: dict[str, dict[str, str]] = {}
    for name, (topic, record) in FULL.items():
        minimal = MINIMAL[name]
        out[name] = {
            "topic": topic.name,
            "full": topic.encode(record).hex(),
            "full_key": topic.key(record).hex(),
            "defaults": topic.encode(minimal).hex(),
            "required_only": required_only(minimal).hex(),
        }
    return out


def generate_tokens() -> dict[str, str]:
    """The golden token vectors from the inputs above."""
    out = {name: verp_address(*args[1:], args[0]) for name, args in VERP_INPUTS.items()}
    out |= {name: unsubscribe_token(*args) for name, args in UNSUBSCRIBE_INPUTS.items()}
    out |= {name: tracking_token(*args) for name, args in TRACKING_INPUTS.items()}
    return out


def load(path: Path) -> Any:
    """A golden file ({} when absent, so --regenerate can write it and the tests fail)."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


RECORDS = load(RECORDS_FILE)
TOKENS = load(TOKENS_FILE)


def non_default_gaps(value: Any, path: str) -> list[str]:
    """The fields of ``value`` (nested structs included) still at their default."""
    if not isinstance(value, msgspec.Struct):
        return []
    gaps: list[str] = []
    for name, default in zip(value.__struct_fields__, _defaults(type(value)), strict=True):
        field = getattr(value, name)
        if name != "schema" and default is not msgspec.NODEFAULT and field == default:
            gaps.append(f"{path}.{name}")
        items = field if isinstance(field, tuple) else (field,)
        for item in items:
            gaps += non_default_gaps(item, f"{path}.{name}")
    return gaps


def test_every_topic_record_type_has_vectors() -> None:
    types = {topic.record_type.__name__ for topic in all_topics()}
    assert types == set(FULL) == set(MINIMAL) == set(RECORDS)


@pytest.mark.parametrize("name", sorted(FULL))
def test_full_vector_sets_every_field(name: str) -> None:
    # A field added to a record without a value here would leave its encoding unpinned.
    assert non_default_gaps(FULL[name][1], name) == []


def test_schema_version_is_the_golden_one() -> None:
    # The vectors are of schema 1: a bump must come with regenerated vectors (docstring).
    assert wire.SCHEMA_VERSION == 1


@pytest.mark.parametrize("name", sorted(FULL))
def test_record_encoding_is_golden(name: str) -> None:
    topic, record = FULL[name]
    golden = RECORDS[name]
    assert golden["topic"] == topic.name
    assert topic.encode(record).hex() == golden["full"]
    assert topic.key(record).hex() == golden["full_key"]
    assert topic.encode(MINIMAL[name]).hex() == golden["defaults"]


@pytest.mark.parametrize("name", sorted(FULL))
def test_golden_bytes_decode_to_the_record(name: str) -> None:
    topic, record = FULL[name]
    assert topic.decode(bytes.fromhex(RECORDS[name]["full"])) == record
    assert topic.decode(bytes.fromhex(RECORDS[name]["defaults"])) == MINIMAL[name]


@pytest.mark.parametrize("name", sorted(FULL))
def test_record_without_the_newer_fields_still_decodes(name: str) -> None:
    # Forward compatibility (records.py): every field but the required ones has a default,
    # so what an older writer wrote, without the newer fields, still decodes.
    topic, _ = FULL[name]
    old = bytes.fromhex(RECORDS[name]["required_only"])
    assert msgspec.msgpack.decode(old, type=dict[str, Any]).keys() < set(
        type(MINIMAL[name]).__struct_fields__
    )
    assert topic.decode(old) == MINIMAL[name]


@pytest.mark.parametrize("name", sorted(FULL))
def test_a_field_from_a_newer_writer_is_ignored(name: str) -> None:
    topic, record = FULL[name]
    fields = msgspec.msgpack.decode(bytes.fromhex(RECORDS[name]["full"]), type=dict[str, Any])
    newer = msgspec.msgpack.encode({**fields, "a_field_from_the_future": [1, "two", b"3"]})
    assert topic.decode(newer) == record


@pytest.mark.parametrize("name", sorted(VERP_INPUTS))
def test_verp_address_is_golden_and_verifies(name: str) -> None:
    secret, local, bounce_domain, message_id, recipient = VERP_INPUTS[name]
    assert verp_address(local, bounce_domain, message_id, recipient, secret) == TOKENS[name]
    assert parse_verp(TOKENS[name], secret) == VerpToken(message_id, recipient)


@pytest.mark.parametrize("name", sorted(VERP_INPUTS))
def test_golden_verp_address_lower_cased_by_a_remote_mta_still_verifies(name: str) -> None:
    secret, _, _, message_id, recipient = VERP_INPUTS[name]
    assert parse_verp(TOKENS[name].lower(), secret) == VerpToken(message_id, recipient.lower())


@pytest.mark.parametrize("name", sorted(VERP_INPUTS))
def test_golden_verp_address_does_not_verify_with_another_secret(name: str) -> None:
    with pytest.raises(ForgedToken):
        parse_verp(TOKENS[name], b"another secret")


@pytest.mark.parametrize("name", sorted(UNSUBSCRIBE_INPUTS))
def test_unsubscribe_token_is_golden_and_verifies(name: str) -> None:
    secret, recipient, scope, message_id = UNSUBSCRIBE_INPUTS[name]
    assert unsubscribe_token(secret, recipient, scope, message_id) == TOKENS[name]
    assert parse_unsubscribe_token(secret, TOKENS[name]) == UnsubscribeToken(
        recipient, scope, message_id
    )


@pytest.mark.parametrize("name", sorted(UNSUBSCRIBE_INPUTS))
def test_golden_unsubscribe_token_does_not_verify_with_another_secret(name: str) -> None:
    with pytest.raises(ForgedToken):
        parse_unsubscribe_token(b"another secret", TOKENS[name])


@pytest.mark.parametrize("name", sorted(TRACKING_INPUTS))
def test_tracking_token_is_golden_and_verifies(name: str) -> None:
    secret, token = TRACKING_INPUTS[name]
    assert tracking_token(secret, token) == TOKENS[name]
    assert parse_tracking_token(secret, TOKENS[name]) == token


@pytest.mark.parametrize("name", sorted(TRACKING_INPUTS))
def test_golden_tracking_token_does_not_verify_with_another_secret(name: str) -> None:
    with pytest.raises(ForgedToken):
        parse_tracking_token(b"another secret", TOKENS[name])


def test_every_token_vector_has_inputs() -> None:
    assert set(TOKENS) == set(VERP_INPUTS) | set(UNSUBSCRIBE_INPUTS) | set(TRACKING_INPUTS)


def regenerate() -> None:
    """Rewrite the golden files from the inputs (a deliberate format change only)."""
    GOLDEN.mkdir(exist_ok=True)
    for path, data in ((RECORDS_FILE, generate_records()), (TOKENS_FILE, generate_tokens())):
        text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__" and sys.argv[1:] == ["--regenerate"]:
    regenerate()

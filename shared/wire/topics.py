"""Every topic, declared once: its name, its record type, its key and its settings.

``postline topics create`` and the Kubernetes KafkaTopic resources read these
declarations, so the broker's settings and the code never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

from shared.errors import DecodeError
from shared.wire.records import (
    ControlAction,
    DeadLetter,
    DeadLetterState,
    Delivery,
    Event,
    MtaStsPolicy,
    Quarantined,
    QueueEntry,
    QueueSnapshot,
    Record,
    Reputation,
    Submission,
    Suppression,
    Tenant,
    TlsRpt,
    WebhookAttempt,
)

R = TypeVar("R", bound=Record)

MiB = 1024 * 1024
DAY_MS = 24 * 3600 * 1000

#: Largest record any topic accepts. Mail can be 25 MiB and more once encoded; the
#: bus adapters size producer requests and consumer fetches from this.
MAX_RECORD_BYTES = 64 * MiB

#: The retry tiers the deliverer uses by default (``postline.retry.<tier>``).
DEFAULT_RETRY_TIERS: tuple[str, ...] = ("1m", "5m", "30m", "2h", "6h")

#: The webhooks stage's retry tiers (``postline.webhooks.retry.<tier>``).
DEFAULT_WEBHOOK_TIERS: tuple[str, ...] = ("30s", "2m", "10m", "1h", "4h")


@dataclass(frozen=True)
class OutRecord:
    """One record to publish: topic name, key and value bytes (``None`` value = tombstone)."""

    topic: str
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class Topic(Generic[R]):
    """A topic bound to its record type, key function and broker settings."""

    name: str
    record_type: type[R]
    key_of: Callable[[R], str]
    partitions: int = 12
    retention_ms: int = 7 * DAY_MS
    compact: bool = False
    max_message_bytes: int = MAX_RECORD_BYTES
    doc: str = ""
    #: Further broker settings, overriding the ones above (how soon compaction runs).
    settings: tuple[tuple[str, str], ...] = ()
    _decoder: msgspec.msgpack.Decoder[R] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_decoder", msgspec.msgpack.Decoder(self.record_type))

    def encode(self, record: R) -> bytes:
        """The record's wire bytes (msgpack)."""
        return _ENCODER.encode(record)

    def decode(self, value: bytes) -> R:
        """Decode wire bytes; raises :class:`DecodeError` naming the topic and the problem."""
        try:
            return self._decoder.decode(value)
        # UnicodeDecodeError: a string that is not UTF-8 (msgspec does not wrap it).
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            raise DecodeError(
                f"{self.name}: cannot decode {self.record_type.__name__}: {exc}"
            ) from exc

    def key(self, record: R) -> bytes:
        """The record's partitioning key."""
        return self.key_of(record).encode()

    def out(self, record: R) -> OutRecord:
        """The record ready to publish on this topic."""
        return OutRecord(self.name, self.key(record), self.encode(record))

    def tombstone(self, key: str) -> OutRecord:
        """A removal on a compacted topic."""
        return OutRecord(self.name, key.encode(), None)

    @property
    def config(self) -> dict[str, str]:
        """Broker-side topic configuration."""
        return {
            "cleanup.policy": "compact" if self.compact else "delete",
            "retention.ms": str(-1 if self.compact else self.retention_ms),
            "max.message.bytes": str(self.max_message_bytes),
            "compression.type": "producer",
        } | dict(self.settings)


_ENCODER = msgspec.msgpack.Encoder()


def suppression_key(address: str, scope: str = "", tenant: str = "") -> str:
    """Key of an address on the suppression list (the scopes: ``shared.suppressions``).

    ``address`` (global) and ``scope|address`` (a sender domain) are the keys from before
    tenants and never change, so records already on the compacted topic keep their key. A
    tenant's entries start with ``tenant:<id>|``: a tenant id is ``[a-z0-9-]``, and ``:`` is
    in neither a host name nor an unquoted local part, so no older key can look like one.
    """
    key = f"{scope.lower()}|{address.lower()}" if scope else address.lower()
    return f"tenant:{tenant.lower()}|{key}" if tenant else key


SUBMITTED: Topic[Submission] = Topic(
    "postline.submitted",
    Submission,
    lambda s: s.id,
    doc="Messages accepted by ingest, before signing.",
)
OUTBOUND: Topic[Delivery] = Topic(
    "postline.outbound",
    Delivery,
    lambda d: d.domain,
    doc="Signed copies to deliver, keyed by recipient domain so one consumer owns a domain.",
)
OUTBOUND_BULK: Topic[Delivery] = Topic(
    "postline.outbound.bulk",
    Delivery,
    lambda d: d.domain,
    doc="Signed bulk copies to deliver: a lane apart, so a bulk backlog never delays "
    "transactional mail to the same domain.",
)
EVENTS: Topic[Event] = Topic(
    "postline.events",
    Event,
    lambda e: e.message_id or e.domain,
    retention_ms=14 * DAY_MS,
    doc="What happened to every message and recipient.",
)
#: What stands where an erased address stood in a suppression key, before its keyed hash.
HASHED_ADDRESS_PREFIX = "hmac-sha256:"


def suppression_record_key(record: Suppression) -> str:
    """The key of a suppression record: by its address, or for an erased address by its
    keyed hash (``hmac-sha256:<hex>``, ``shared.addresshash``) where the address would be."""
    address = record.address or HASHED_ADDRESS_PREFIX + record.address_hash
    return suppression_key(address, record.scope, record.tenant)


SUPPRESSIONS: Topic[Suppression] = Topic(
    "postline.suppressions",
    Suppression,
    suppression_record_key,
    partitions=3,
    compact=True,
    max_message_bytes=1 * MiB,
    doc="Addresses not to mail (compacted; a tombstone removes one).",
)
TENANTS: Topic[Tenant] = Topic(
    "postline.tenants",
    Tenant,
    lambda t: t.id,
    partitions=1,
    compact=True,
    max_message_bytes=4 * MiB,
    doc="The businesses Postline relays for (compacted; a tombstone removes one).",
)
CONTROL: Topic[ControlAction] = Topic(
    "postline.control",
    ControlAction,
    lambda a: f"{a.verb}|{a.target}",
    partitions=1,
    compact=True,
    max_message_bytes=1 * MiB,
    doc="Operators' actions for the running replicas (compacted: the last one per target).",
)
#: Compaction settings of the queue's tables, which churn (an entry per deferral, a
#: tombstone per end): Kafka compacts only closed segments (``segment.ms``, default 7 days)
#: and keeps tombstones ``delete.retention.ms`` (default 1 day), and a reader of the table
#: reads what is not compacted yet, so both are short here.
_CHURNING_TABLE = (
    ("segment.ms", str(3600 * 1000)),
    ("delete.retention.ms", str(3600 * 1000)),
    ("min.cleanable.dirty.ratio", "0.2"),
)
QUEUE: Topic[QueueEntry] = Topic(
    "postline.queue",
    QueueEntry,
    lambda e: e.delivery_id,
    compact=True,
    max_message_bytes=1 * MiB,
    doc="The deferred queue: one small entry per Delivery waiting in a retry tier, written "
    "with the deferral and removed with its outcome (compacted; read by postline queue).",
    settings=_CHURNING_TABLE,
)
QUEUE_LIVE: Topic[QueueSnapshot] = Topic(
    "postline.queue.live",
    QueueSnapshot,
    lambda s: s.instance,
    partitions=1,
    compact=True,
    max_message_bytes=8 * MiB,
    doc="Each deliverer replica's live queue state (windows, in flight, last errors), "
    "published every few seconds (compacted; a gone replica's record ages out).",
    # A replica that is gone leaves its last record: deleted after an hour (compact,delete);
    # a live one publishes far more often than that.
    settings=(
        ("cleanup.policy", "compact,delete"),
        ("retention.ms", str(3600 * 1000)),
        ("segment.ms", str(600 * 1000)),
    ),
)
REPUTATION: Topic[Reputation] = Topic(
    "postline.reputation",
    Reputation,
    lambda r: r.key,
    partitions=1,
    compact=True,
    max_message_bytes=1 * MiB,
    doc="Reputation per tenant, sending domain and provider, and the warm-up state of each "
    "source address (compacted; written by the reputation stage).",
)
QUARANTINE: Topic[Quarantined] = Topic(
    "postline.quarantine",
    Quarantined,
    lambda q: q.submission.id,
    partitions=1,
    compact=True,
    doc="Messages the content scanner held back, until an operator releases (to the signer) "
    "or deletes them (compacted, key: message id; a tombstone ends an entry).",
)
DEAD: Topic[DeadLetter] = Topic(
    "postline.dead",
    DeadLetter,
    lambda d: d.topic,
    partitions=1,
    retention_ms=30 * DAY_MS,
    doc="Records a consumer could not decode or process, with the reason.",
)
DEAD_STATE: Topic[DeadLetterState] = Topic(
    "postline.dead.state",
    DeadLetterState,
    lambda s: f"{s.partition}:{s.offset}",
    partitions=1,
    compact=True,
    max_message_bytes=1 * MiB,
    doc="What became of each dead letter: redriven, purged, or still dead after a refused "
    "redrive (compacted, keyed by the dead letter's partition and offset).",
)
MTA_STS: Topic[MtaStsPolicy] = Topic(
    "postline.mta-sts",
    MtaStsPolicy,
    lambda p: p.domain.lower(),
    partitions=1,
    compact=True,
    max_message_bytes=1 * MiB,
    doc="Recipient domains' MTA-STS policies as the deliverer last fetched them (RFC 8461), "
    "shared by every replica and kept across restarts (compacted, key: domain).",
)
TLSRPT: Topic[TlsRpt] = Topic(
    "postline.tlsrpt",
    TlsRpt,
    lambda r: tlsrpt_key(r.day, r.domain, r.partition if r.state == "counts" else None),
    partitions=3,
    compact=True,
    max_message_bytes=1 * MiB,
    doc="TLS-RPT (RFC 8460) session counts per policy domain, UTC day and events partition, "
    "and which days' reports are settled (compacted; written by the bouncer).",
)


def tlsrpt_key(day: str, domain: str, partition: int | None) -> str:
    """Key of a ``postline.tlsrpt`` record: ``counts|<day>|<domain>|<partition>`` for the
    counts of one events partition, ``done|<day>|<domain>`` (``partition`` None) for the
    mark that the day's report is settled."""
    if partition is None:
        return f"done|{day}|{domain}"
    return f"counts|{day}|{domain}|{partition}"


def lane_of(delivery: Delivery) -> Topic[Delivery]:
    """The outbound topic (the lane) of ``delivery``: bulk mail on ``postline.outbound.bulk``,
    everything else (transactional mail, DSNs) on ``postline.outbound``. A lane is a topic,
    not a priority field, because a Kafka partition is FIFO: no record can overtake the
    backlog ahead of it in its own partition."""
    return OUTBOUND_BULK if delivery.bulk else OUTBOUND


def retry_topic(tier: str) -> Topic[Delivery]:
    """The retry tier topic ``postline.retry.<tier>``."""
    return Topic(
        f"postline.retry.{tier}",
        Delivery,
        lambda d: d.domain,
        doc=f"Deferred Deliveries waiting about {tier} before the next attempt.",
    )


#: Every webhook retry tier topic starts with this.
WEBHOOK_RETRY_PREFIX = "postline.webhooks.retry."


def webhook_retry_topic(tier: str) -> Topic[WebhookAttempt]:
    """The webhooks stage's retry tier topic ``postline.webhooks.retry.<tier>``, keyed by
    tenant and endpoint (one endpoint's retries stay in order on one partition)."""
    return Topic(
        f"{WEBHOOK_RETRY_PREFIX}{tier}",
        WebhookAttempt,
        lambda a: f"{a.tenant}|{a.endpoint}",
        max_message_bytes=4 * MiB,
        doc=f"Webhook deliveries waiting about {tier} before the next attempt.",
    )


def all_topics(
    retry_tiers: tuple[str, ...] = DEFAULT_RETRY_TIERS,
    webhook_tiers: tuple[str, ...] = DEFAULT_WEBHOOK_TIERS,
) -> list[Topic[Any]]:
    """Every topic Postline uses, in pipeline order."""
    topics: list[Topic[Any]] = [
        SUBMITTED,
        OUTBOUND,
        OUTBOUND_BULK,
        EVENTS,
        SUPPRESSIONS,
        TENANTS,
        CONTROL,
        REPUTATION,
        QUEUE,
        QUEUE_LIVE,
        DEAD,
        DEAD_STATE,
        QUARANTINE,
        MTA_STS,
        TLSRPT,
    ]
    topics += [retry_topic(t) for t in retry_tiers]
    topics += [webhook_retry_topic(t) for t in webhook_tiers]
    return topics

"""The records that cross topics, one frozen msgspec Struct per topic.

Wire rules (rolling upgrades depend on them):
- every record carries ``schema`` (its version); a reader accepts unknown fields,
- a new field always has a default and a field never changes type,
- raw message bytes stay ``bytes`` end to end; they are never decoded and re-encoded.

Times are Unix epoch seconds as floats (UTC); durations are seconds.
"""

from __future__ import annotations

import enum
import time
import uuid

import msgspec

SCHEMA_VERSION = 1


def now() -> float:
    """The current time as a record timestamp."""
    return time.time()


def new_id() -> str:
    """A new message or delivery id: 32 hex digits, sortable by nothing, unique everywhere."""
    return uuid.uuid4().hex


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every wire record."""

    schema: int = SCHEMA_VERSION


class ClientInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Who handed us a message: the SMTP client as ingest saw it."""

    ip: str
    port: int = 0
    helo: str = ""
    auth_user: str | None = None
    tls: str | None = None  # "TLSv1.3" etc., None when the session was plaintext
    listener: str = ""


class Submission(Record, frozen=True, kw_only=True):
    """A message accepted by ingest (topic ``postline.submitted``, key: message id)."""

    id: str
    received_at: float
    client: ClientInfo
    mail_from: str  # "" is the null reverse-path
    rcpt_to: tuple[str, ...]
    data: bytes  # raw RFC 5322 message, exactly as received (plus our trace headers)
    tags: dict[str, str] = {}
    smtputf8: bool = False
    body_8bit: bool = False


class SmtpReply(msgspec.Struct, frozen=True, kw_only=True):
    """One SMTP reply: ``550 5.1.1 No such user``."""

    code: int
    enhanced: str = ""
    text: str = ""

    def __str__(self) -> str:
        parts = [str(self.code)]
        if self.enhanced:
            parts.append(self.enhanced)
        if self.text:
            parts.append(self.text)
        return " ".join(parts)


class Delivery(Record, frozen=True, kw_only=True):
    """One signed copy for one recipient domain (``postline.outbound``, key: domain).

    Also the record of the retry tiers (``postline.retry.<tier>``), with ``not_before`` set.
    """

    message_id: str
    delivery_id: str
    domain: str
    mail_from: str  # the VERP return path, or "" for DSNs we send
    rcpt_to: tuple[str, ...]
    data: bytes
    sender: str = ""  # the original envelope sender, for DSNs back to it
    attempt: int = 0
    submitted_at: float = 0.0
    first_attempt_at: float | None = None
    last_attempt_at: float | None = None
    expires_at: float = 0.0
    not_before: float = 0.0
    tags: dict[str, str] = {}
    smtputf8: bool = False
    body_8bit: bool = False
    bulk: bool = False
    is_dsn: bool = False
    last_reply: SmtpReply | None = None


class EventKind(enum.StrEnum):
    """What happened to a message or recipient."""

    ACCEPTED = "accepted"  # ingest answered 250 and the Submission is durable
    REJECTED = "rejected"  # ingest or a stage refused it; ``check`` names who
    SIGNED = "signed"  # the signer produced its Deliveries
    DELIVERED = "delivered"  # a remote MX answered 2xx for the recipient
    DEFERRED = "deferred"  # a temporary failure; the Delivery went to a retry tier
    BOUNCED = "bounced"  # a permanent failure (synchronous 5xx or an asynchronous DSN)
    EXPIRED = "expired"  # deferred past the message's maximum age
    COMPLAINED = "complained"  # a feedback report (ARF) about the recipient
    UNSUBSCRIBED = "unsubscribed"  # the recipient used List-Unsubscribe
    SUPPRESSED = "suppressed"  # dropped because the recipient is on the suppression list
    AUTO_REPLIED = "auto_replied"  # an RFC 3834 auto-reply came back; never a bounce
    THROTTLED = "throttled"  # a destination's shaping changed (adaptive throttling)
    FAILED = "failed"  # a stage could not process the message (e.g. no DKIM key allowed)


class Event(Record, frozen=True, kw_only=True):
    """Something that happened, for the bouncer, reporting and tests (``postline.events``).

    Key: message id (or the domain for destination events such as ``throttled``).
    """

    kind: EventKind
    message_id: str = ""
    at: float
    recipient: str = ""
    domain: str = ""
    delivery_id: str = ""
    sender: str = ""
    reply: SmtpReply | None = None
    mx: str = ""
    provider: str = ""
    tls: str = ""
    attempt: int = 0
    classification: str = ""
    check: str = ""  # the check or component that decided (rejections, failures)
    detail: str = ""
    tags: dict[str, str] = {}
    stage: str = ""
    headers: bytes = b""  # bounced/expired: the original's header block, for the sender's DSN
    bulk: bool = False  # bulk mail (signed, suppressed by the signer; bounced/expired: no DSN)


class SuppressionReason(enum.StrEnum):
    """Why an address is suppressed."""

    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCES = "soft_bounces"  # N soft bounces within the configured window
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    MANUAL = "manual"


class Suppression(Record, frozen=True, kw_only=True):
    """An address we must not mail (``postline.suppressions``, compacted, key: scope/address).

    A removal is a tombstone: the key with no value.
    """

    address: str
    reason: SuppressionReason
    source: str = ""  # "bouncer", "api", "cli", "ingest", ...
    at: float
    scope: str = ""  # "" for every sender; else the sender domain an unsubscribe applies to
    detail: str = ""


class ControlVerb(enum.StrEnum):
    """What an operator asks the running stages to do."""

    AUTH_UNBLOCK = "auth_unblock"  # forget AUTH failures of an address or a user name


class ControlAction(Record, frozen=True, kw_only=True):
    """An operator's action for the running replicas (``postline.control``, compacted,
    key: verb and target), published by the CLI, applied by every replica that follows it."""

    verb: ControlVerb
    target: str  # what it applies to: an IP address, a user name, a domain ...
    at: float
    by: str = ""  # who asked (the CLI's user, an API token's name)


class DeadLetter(Record, frozen=True, kw_only=True):
    """A record a consumer could not use (``postline.dead``, key: original topic)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    group: str
    at: float

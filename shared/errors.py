"""Postline's exception tree.

Every error Postline raises on purpose derives from :class:`PostlineError`.
Library errors (aiokafka, sqlite3, aiosmtplib, dnspython) are mapped to these at
the boundary with ``raise ... from exc``, so callers never catch a library type.

    PostlineError
    ├── ConfigError            a config file or environment override is invalid
    ├── ListenError            a listener cannot bind the address its config key names
    ├── RecordError            bytes on a topic are not a record we can use
    │   └── DecodeError        msgpack/schema decoding failed (the record goes to postline.dead)
    ├── ForgedToken            a VERP or unsubscribe token fails its HMAC or cannot be parsed
    ├── SealError              a sealed private key does not open (wrong KEK, moved record)
    ├── QueueError             a queue command (postline queue, the admin API) cannot be done
    │   ├── QueueInvalid       a malformed target, id, duration or reason
    │   └── QueueNotFound      no queued message or destination matches
    ├── DeadLetterError        a dead-letter command (postline dead, the admin API) cannot be done
    │   ├── DeadLetterInvalid  a malformed offset, topic, time or duration
    │   └── DeadLetterNotFound no dead letter at that offset (never written, or aged out)
    ├── QuarantineError        a quarantine command (postline quarantine, the admin API) cannot
    │   │                      be done
    │   ├── QuarantineInvalid  an ambiguous or malformed message id, or a message that does not
    │   │                      decode
    │   └── QuarantineNotFound no quarantined message has that id (released, deleted, never)
    ├── TenantError            a tenant operation (CLI, admin API) cannot be done as asked
    │   ├── TenantInvalid      a malformed id, name, limit, setting, credential or password
    │   ├── TenantNotFound     no such tenant, credential or API key
    │   └── TenantConflict     the change collides with what exists (id taken, a credential
    │       │                  name or domain owned by another tenant)
    │       └── TenantChangedMeanwhile  another admin changed the tenant first: retry
    ├── WebhookError           a webhook command (postline webhooks) cannot be done
    │   ├── WebhookInvalid     a malformed URL, event kind or batch size
    │   ├── WebhookNotFound    no such endpoint
    │   └── WebhookRefused     a URL or address the SSRF rules refuse (private, plain http)
    ├── LimiterUnavailable     the shared limiter (Redis) did not answer; fail-closed answers 451
    ├── StoreError             the reporting store (PostgreSQL or SQLite) cannot do what was asked
    │   ├── StoreInvalid       a malformed store URL, query, time range or page cursor
    │   ├── StoreUnavailable   the database is down, refused us or did not answer in time
    │   └── SchemaTooNew       the database was migrated by a newer Postline than this one
    ├── BusError               the bus could not do what was asked
    │   ├── BusUnavailable     the bus is unreachable or did not answer within the deadline
    │   │   └── BusFull        the bus has no room to write (a full disk, embedded.max_size)
    │   ├── TransactionAborted a transaction was aborted; nothing it published is visible
    │   └── RecordTooLarge     a record exceeds the bus's maximum message size
    └── StageError             a stage failed in a way the runtime must handle
        ├── PoisonRecord       one input record cannot be processed; dead-letter it, go on
        ├── SigningError       the signer cannot DKIM-sign a message (no From, unparsable)
        ├── Untrackable        the signer cannot rewrite a message's links safely: sent untouched
        └── WorkTimedOut       out-of-order work got no outcome within the loop's max hold
"""

from __future__ import annotations


class PostlineError(Exception):
    """Base of every error Postline raises on purpose."""


class ConfigError(PostlineError):
    """A config file or environment override is invalid.

    The message always names the file (or the environment variable) and the key path.
    """

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}")


class ListenError(PostlineError):
    """A listener (SMTP or HTTP) cannot bind its address: the port is in use, the address
    is not local, or binding it needs privileges.

    Raised at start; the message names the config key, so the process stops with one line
    an operator can act on instead of a traceback.
    """

    def __init__(self, key: str, host: str, port: int, reason: str) -> None:
        self.key = key
        super().__init__(f"{key}: cannot listen on {host}:{port}: {reason}")


class RecordError(PostlineError):
    """Bytes on a topic are not a record we can use."""


class DecodeError(RecordError):
    """A record's bytes could not be decoded into its topic's record type."""


class ForgedToken(PostlineError):
    """A VERP return path or unsubscribe token is malformed or its HMAC does not verify.

    Bounces and unsubscribes carrying one are ignored (and counted): anyone can send them.
    """


class TenantError(PostlineError):
    """A tenant operation (``shared.tenant_admin``) cannot be done as asked.

    The message names the tenant and the thing at fault; the CLI prints it and exits 1, the
    admin API answers it as JSON with a 4xx status (per subclass).
    """


class TenantInvalid(TenantError):
    """A malformed tenant id, name, limit, setting, credential name or password (HTTP 400).

    A bad field is named as it is written in the record (``limits.per_hour``).
    """


class TenantNotFound(TenantError):
    """No tenant, credential or API key by that name (HTTP 404)."""


class TenantConflict(TenantError):
    """The change collides with what exists (HTTP 409): a tenant id taken with another
    name, a credential name or a sending domain already owned by another tenant (named)."""


class TenantChangedMeanwhile(TenantConflict):
    """The tenant's revision moved between reading it and publishing the change: another
    admin changed it first. Nothing was published; running the command again is safe."""


class SealError(PostlineError):
    """A tenant's sealed DKIM private key does not open with any configured KEK.

    Raised by ``shared.sealing``: the key was sealed under a KEK this process does not have
    (``secrets.kek_file`` / ``kek_previous_files``), or the sealed bytes were moved to another
    tenant, domain or selector than they were sealed for, or are corrupt. The signer then
    does not use that key (and says so); the CLI stops with the message.
    """


class QueueError(PostlineError):
    """A queue inspection or control command (``shared.queue``) cannot be done as asked.

    The message names what is at fault; the CLI prints it and exits 1, the admin API
    answers it as JSON with a 4xx status (per subclass).
    """


class QueueInvalid(QueueError):
    """A malformed target (``domain:example.com``), message id, duration or reason (HTTP 400)."""


class QueueNotFound(QueueError):
    """No queued message has that id, or nothing queued matches the target (HTTP 404)."""


class CredentialHoldError(PostlineError):
    """A credential hold or release (``postline credential``) cannot be done as asked: the
    credential is already held, or not held, or the hold names no reason."""


class DeadLetterError(PostlineError):
    """A dead-letter command (``shared.deadletters``) cannot be done as asked; the message
    names what is at fault (the CLI prints it and exits 1, the admin API answers 4xx)."""


class DeadLetterInvalid(DeadLetterError):
    """A malformed offset, topic, time or duration, or no selection at all (HTTP 400)."""


class DeadLetterNotFound(DeadLetterError):
    """No dead letter at an offset asked for: never written, or past retention (HTTP 404)."""


class QuarantineError(PostlineError):
    """A quarantine command (``shared.quarantine``) cannot be done as asked; the message names
    what is at fault (the CLI prints it and exits 1, the admin API answers 4xx)."""


class QuarantineInvalid(QuarantineError):
    """An id too short to be a prefix or matching several messages, or a message whose record
    does not decode, so it cannot be released (HTTP 400)."""


class QuarantineNotFound(QuarantineError):
    """No message in the quarantine has that id or prefix: already released or deleted, or
    never quarantined (HTTP 404)."""


class UrlInvalid(PostlineError):
    """A URL Postline is asked to send to that is not one it can use: malformed, not
    http(s), or carrying a user name or password (``shared.netguard``)."""


class UrlRefused(PostlineError):
    """A URL or resolved address the SSRF rules refuse (``shared.netguard``): plain http
    outside loopback development, or a loopback, private, link-local, CGNAT, multicast or
    reserved address that the config does not allow."""


class WebhookError(PostlineError):
    """A webhook endpoint operation (``postline webhooks``) cannot be done as asked."""


class WebhookInvalid(WebhookError, UrlInvalid):
    """A malformed URL, event kind or batch size."""


class WebhookNotFound(WebhookError):
    """No endpoint with that id (for that tenant)."""


class WebhookRefused(WebhookError, UrlRefused):
    """A webhook URL the SSRF rules refuse (:class:`UrlRefused`, for a webhook)."""


class LimiterUnavailable(PostlineError):
    """The shared limiter (Redis) is unreachable, failed or did not answer within
    ``limits.timeout``.

    With ``limits.on_redis_failure = "closed"`` the caller sees it and answers
    ``451 4.3.0`` (the client retries later); with ``"open"`` the limiter decides the check
    in process instead and the caller never sees it.
    """


class StoreError(PostlineError):
    """The reporting store (``shared.store``) cannot do what was asked."""


class StoreInvalid(StoreError):
    """A malformed store URL, query, time range or page cursor (HTTP 400)."""


class StoreUnavailable(StoreError):
    """The database is down, refused the connection or did not answer in time.

    Not the data's fault: the store stage keeps its offsets uncommitted and tries again later.
    """


class SchemaTooNew(StoreError):
    """The database's schema has migrations this code does not know: a newer Postline
    migrated it. Refuse to start rather than write rows that code cannot read back."""


class BusError(PostlineError):
    """The bus could not do what was asked."""


class BusUnavailable(BusError):
    """The bus is unreachable or did not acknowledge within the deadline.

    Ingest answers 451 4.3.0 when it sees this: the client retries, nothing is lost.
    """


class BusFull(BusUnavailable):
    """The bus has no room to write: the embedded bus's disk is full or its file reached
    ``embedded.max_size`` (SQLite's SQLITE_FULL). Nothing of the write was kept.

    Ingest answers ``452 4.3.1`` (RFC 3463: "mail system full", a temporary condition) and
    the client retries; stages back off as for any unavailable bus until room returns.
    """


class TransactionAborted(BusError):
    """A transaction was aborted: none of its outputs are visible, no offset moved."""


class RecordTooLarge(BusError):
    """A record is larger than the bus accepts (Kafka max.message.bytes, embedded limit)."""


class StageError(PostlineError):
    """A stage failed in a way the runtime must handle."""


class PoisonRecord(StageError):
    """One input record cannot be processed; the runtime dead-letters it and moves on."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class SigningError(StageError):
    """The signer cannot DKIM-sign a message (no From header, headers dkimpy cannot parse).

    The signer turns it into a ``failed`` event for the message; the batch goes on.
    """


class Untrackable(StageError):
    """The signer cannot add open and click tracking to a message safely (signed or
    encrypted content, MIME it cannot parse, an unknown charset, no tracking host, ...).

    ``reason`` is one word (the ``tracking`` event's classification and a metric label);
    the message is sent untouched, never failed, with that event.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class WorkTimedOut(StageError):
    """Work taken by the watermark loop got no outcome within its maximum hold time.

    The loop fails the record with the stage's failure outcome (the deliverer defers it) so
    one lost piece of work never holds its partition's committed offset forever.
    """

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


class RecipientDsn(msgspec.Struct, frozen=True, kw_only=True):
    """One recipient's DSN parameters from RCPT TO (RFC 3461 4.1, 4.2), decoded."""

    #: ``("NEVER",)``, or some of SUCCESS, FAILURE, DELAY; ``()``: not given (FAILURE).
    notify: tuple[str, ...] = ()
    orcpt: str = ""  # ORCPT as ``addr-type;address`` (xtext decoded); "" when not given


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
    tenant: str = ""  # the sending tenant's id ("" from writers before tenants: default)
    #: Deliver no earlier than this (epoch seconds; 0: at once): the API's ``send_at`` or the
    #: SMTP header ``X-Postline-Deliver-After`` (``shared.sendat``).
    send_at: float = 0.0
    #: The DSN extension (RFC 3461, ``shared.dsnparams``): MAIL FROM's RET ("FULL", "HDRS";
    #: "" not given) and ENVID (decoded; "" not given), and per recipient (the address as in
    #: ``rcpt_to``) its NOTIFY and ORCPT; a recipient without any is not in ``dsn``.
    dsn_ret: str = ""
    dsn_envid: str = ""
    dsn: dict[str, RecipientDsn] = {}
    #: Per-message TLS requirements (``shared.tlsrequire``): ``require_tls``: every hop over
    #: TLS with a verified certificate (REQUIRETLS, ``X-Postline-Require-TLS``, the tenant's
    #: setting); ``requiretls``: RFC 8689's REQUIRETLS on MAIL FROM, which also needs a
    #: DNSSEC or MTA-STS MX and a next hop offering REQUIRETLS; ``tls_optional``: the
    #: ``TLS-Required: No`` field (RFC 8689 5), MTA-STS and DANE failures do not stop it.
    require_tls: bool = False
    requiretls: bool = False
    tls_optional: bool = False
    #: The events ingest recorded with the message (``accepted``, ``suppressed``, ``scanned``).
    #: They travel inside it so that ingest's hand-off is one record, which Kafka makes
    #: durable without a transaction; the signer publishes them, in the transaction that
    #: consumes this record, so each appears exactly once and before any event of its own.
    events: tuple[Event, ...] = ()


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
    tenant: str = ""  # the sending tenant's id ("" from writers before tenants: default)
    #: The Submission's send-at (0: none). While it is ahead the Delivery waits in the retry
    #: tiers, ``not_before`` being the end of its current pass (``shared.sendat``).
    send_at: float = 0.0
    #: It waited in a retry tier, so ``postline.queue`` has an entry for it, removed (a
    #: tombstone) in the transaction that records how it ended (``shared.queue.index``).
    indexed: bool = False
    #: The Submission's DSN parameters (RFC 3461), ``dsn`` for this copy's recipients only.
    dsn_ret: str = ""
    dsn_envid: str = ""
    dsn: dict[str, RecipientDsn] = {}
    #: The Submission's TLS requirements (``shared.tlsrequire``), enforced per connection.
    require_tls: bool = False
    requiretls: bool = False
    tls_optional: bool = False


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
    TENANT_CHANGED = "tenant_changed"  # an operator changed a tenant (the audit trail)
    #: A reputation decision about a tenant, sending domain or source address
    #: (``classification``: warning, paused, recovered, warmup_advanced, warmup_held,
    #: warmup_stepped_back), with the figures that caused it in ``figures``.
    REPUTATION = "reputation"
    #: An operator's action on a dead letter (``classification``: redriven, purged,
    #: redrive_refused; ``by`` who, ``detail`` which record and why): the audit trail.
    DEAD_LETTER = "dead_letter"
    #: An operator's queue action (``postline queue ...`` or the admin API):
    #: ``classification`` is the verb, ``detail`` the target and its terms, ``by`` who.
    QUEUE_ACTION = "queue_action"
    #: An operator deleted the recipient's queued mail (``postline queue delete``): it is
    #: not sent and no DSN goes back (Postfix ``postsuper -d``).
    DELETED = "deleted"
    #: The content scanner's verdict on a message at ingest (``check``: the scanner;
    #: ``classification``: clean, tagged, rejected, soft_rejected, quarantined, skipped or
    #: unavailable; ``figures``: ``score`` and ``required``; ``symbols``: the top symbols;
    #: ``detail``: the reference id the client was given and what was done).
    SCANNED = "scanned"
    #: An operator's action on a quarantined message (``classification``: released or
    #: deleted; ``by`` who, ``detail`` why).
    QUARANTINE = "quarantine"
    #: A credential held or released (``classification``: held or released; ``credential``
    #: the login or API key id; ``figures``: what rose and its baseline; ``detail``: the
    #: explanation; ``by``: the reputation stage or the operator).
    CREDENTIAL = "credential"
    #: The recipient's mail client loaded the tracking pixel (``agent``: the user agent's
    #: class; ``machine``: a proxy or scanner, not a person; ``client_ip``).
    OPENED = "opened"
    #: The recipient followed a tracked link (``url``: where it led; ``link``: its number in
    #: the message; ``agent``, ``machine`` and ``client_ip`` as for ``opened``).
    CLICKED = "clicked"
    #: The signer left a message's links and pixel alone (``classification``: the reason,
    #: e.g. ``unparseable``, ``too_large``, ``signed_content``); the message went untouched.
    TRACKING = "tracking"
    #: A webhook endpoint changed state (``classification``: paused, resumed, dead_lettered,
    #: redriven; ``detail``: the endpoint id and why; ``by``: who or which stage).
    WEBHOOK = "webhook"
    #: One connection attempt's transport security, written by the deliverer per MX host it
    #: connected to (key: the recipient domain): what governed it (``tls_security``), what
    #: was negotiated and verified, and the RFC 8460 result type when a check failed. The
    #: TLS-RPT reports are counted from these.
    TLS_SESSION = "tls_session"


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
    #: bounced/expired, and delivered/deferred when the sender asked for a success or delay
    #: notice (RFC 3461 NOTIFY): the original's header block, for the sender's DSN.
    headers: bytes = b""
    bulk: bool = False  # bulk mail (signed, suppressed by the signer; bounced/expired: no DSN)
    tenant: str = ""  # the tenant the event belongs to ("" from writers before tenants)
    by: str = ""  # tenant_changed: who made the change
    before: bytes = b""  # tenant_changed: the tenant record before (msgpack; b"" when added)
    after: bytes = b""  # tenant_changed: the tenant record after (msgpack; b"" when removed)
    source: str = ""  # deliverer: the local address the attempt was sent from ("" = the OS's)
    scope: str = ""  # reputation: what the decision is about ("tenant", "domain", "address")
    figures: dict[str, float] = {}  # reputation: the counts and rates behind the decision
    #: The AUTH login or API key id the message was submitted with ("" when relayed from a
    #: trusted network): accepted, rejected and scanned events.
    credential: str = ""
    symbols: dict[str, float] = {}  # scanned: the scanner's top symbols and their scores
    #: accepted: how many recipients the message was accepted for, and their distinct
    #: domains (the reputation stage's compromised-account detection counts them).
    recipients: int = 0
    recipient_domains: tuple[str, ...] = ()
    #: bounced, deferred, expired (deliverer and bouncer), complained, auto_replied: why, one
    #: of ``shared.bounceclass.reasons.Reason`` ("userunknown", "blocked", ...; "" from
    #: writers before reasons and for the other kinds).
    reason: str = ""
    #: bounced/deferred/complained from a report: the DSN's Original-Recipient (RFC 3464
    #: 2.3.1, the address the sender gave) when the report names one, kept beside
    #: ``recipient`` (the VERP token's, which is the one acted on) because forwarding and
    #: aliases make the address the remote MTA tried differ from it.
    original_recipient: str = ""
    #: clicked: the link's original URL (from the authenticated token, never the request).
    url: str = ""
    link: int = 0  # clicked: the link's number in the message (1 = first); 0 otherwise
    #: opened/clicked: the class of the user agent ("browser", "mail_client", "apple_mpp",
    #: "gmail_proxy", "yahoo_proxy", "scanner", "bot", "unknown"; the bouncer's
    #: ``tracking/agents.py`` decides it).
    agent: str = ""
    #: opened/clicked: made by a machine (a privacy proxy that prefetches every image, a
    #: security scanner that follows every link), not by the recipient: reports count
    #: human opens and clicks apart.
    machine: bool = False
    client_ip: str = ""  # opened/clicked: the address the request came from
    #: delivered/deferred/bounced by the deliverer, tls_session: what governed the session's
    #: transport security: "none" (plaintext), "opportunistic", "mta-sts", "dane" or
    #: "required" (our own policy: configuration, REQUIRETLS, the tenant's).
    tls_security: str = ""
    tls_verified: bool = False  # the peer's certificate was verified (WebPKI or TLSA)
    tls_cipher: str = ""  # the cipher suite negotiated ("" when plaintext)
    mx_address: str = ""  # tls_session: the address of the MX host (RFC 8460 receiving-ip)
    #: tls_session: the RFC 8460 4.3 result type of a failed check
    #: ("starttls-not-supported", "certificate-host-mismatch", "validation-failure", ...);
    #: "" when the session met its policy.
    tls_failure: str = ""
    #: tls_session: the policy that applied, as RFC 8460 reports it: the domain that
    #: published it, its type ("sts", "tlsa" or "no-policy-found"), its policy strings
    #: (the MTA-STS policy's lines or the TLSA records) and the MTA-STS mx patterns.
    tls_policy_domain: str = ""
    tls_policy_type: str = ""
    tls_policy: tuple[str, ...] = ()
    tls_mx_patterns: tuple[str, ...] = ()
    #: delivered/deferred/bounced/expired by the deliverer: the sender's DSN request
    #: (RFC 3461) for the recipient: NOTIFY (``()``: not given, FAILURE), ORCPT
    #: (``addr-type;address``, decoded), and MAIL FROM's RET and ENVID. The bouncer's DSN
    #: honours them.
    dsn_notify: tuple[str, ...] = ()
    dsn_orcpt: str = ""
    dsn_ret: str = ""
    dsn_envid: str = ""
    #: delivered: the MX offered DSN and was given the sender's parameters, so it, not
    #: Postline, owes the success and delay notices (RFC 3461 5.2.1); false: Postline sends
    #: a "relayed" notice when SUCCESS was asked (RFC 3461 5.2.2).
    dsn_passed: bool = False
    #: bounced/expired by the deliverer, and delivered/deferred events that carry the
    #: headers for a success or delay notice: the message was sent with REQUIRETLS (RFC
    #: 8689), so the DSN made of the event goes with REQUIRETLS too (RFC 8689 4.3).
    requiretls: bool = False
    #: accepted: the message's Subject header, RFC 2047 decoded, at most 200 characters
    #: (ingest's ``headers.subject``): what the reporting store searches by prefix.
    subject: str = ""


class SuppressionReason(enum.StrEnum):
    """Why an address is suppressed."""

    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCES = "soft_bounces"  # N soft bounces within the configured window
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    MANUAL = "manual"


class Suppression(Record, frozen=True, kw_only=True):
    """An address we must not mail (``postline.suppressions``, compacted, key: tenant, scope
    and address: ``shared.wire.topics.suppression_key``; the scopes: ``shared.suppressions``).

    A removal is a tombstone: the key with no value.
    """

    address: str
    reason: SuppressionReason
    source: str = ""  # "bouncer", "api", "cli", "ingest", ...
    at: float
    scope: str = ""  # "" for every sender; else the sender domain an unsubscribe applies to
    detail: str = ""
    tenant: str = ""  # "" for every tenant; else only that tenant's mail (shared.suppressions)
    #: A bounce's or complaint's reason (``shared.bounceclass.reasons``: "userunknown",
    #: "mailboxfull", "feedback"...); "" for unsubscribes, manual entries and older writers.
    bounce_reason: str = ""
    #: How the recipient's objection or the failure reached us, the proof's kind: "one_click"
    #: (RFC 8058 POST), "mailto" (List-Unsubscribe mail), the report's parser for a
    #: complaint or an asynchronous bounce ("arf", "jmrp", "dsn", ...), "smtp" (the
    #: deliverer's reply), "cli" or "api" (an operator); "" from older writers.
    method: str = ""
    #: The proof, kept as long as the entry: an unsubscribe's token HMAC (hex; it verifies
    #: again with the address, scope and message id under the token secret:
    #: ``shared.wire.tokens.unsubscribe_proof``), a report's own Message-ID; "" for none.
    proof: str = ""
    message_id: str = ""  # the message the unsubscribe, complaint or bounce was about
    #: An erased address (``postline gdpr erase``): ``address`` is "" and this is its keyed
    #: hash (``shared.addresshash``), so the entry still suppresses without the address.
    address_hash: str = ""


class TenantState(enum.StrEnum):
    """Whether a tenant may send."""

    ACTIVE = "active"
    PAUSED = "paused"  # temporarily: ingest refuses (550 5.7.1 or 451 per policy), resumable
    DISABLED = "disabled"  # for good (account closed, abuse): refused like paused


class TenantStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's state, who set it, why and when (the reason reaches the refused client)."""

    state: TenantState = TenantState.ACTIVE
    by: str = ""
    why: str = ""
    at: float = 0.0


class DkimKeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A DKIM key of a tenant's sending domain, added at run time.

    The private key is sealed (AES-256-GCM, ``shared.sealing``) with the installation's
    key-encryption key, so the compacted topic never holds it in the clear and every signer
    can use it without a restart or a redeploy.
    """

    selector: str
    algorithm: str  # "rsa" | "ed25519"
    public_key: str  # base64 SubjectPublicKeyInfo (RSA) or raw key (Ed25519): the p= tag
    sealed_private_key: bytes  # nonce + ciphertext of the PKCS#8 PEM
    created_at: float
    not_before: float = 0.0
    not_after: float = 0.0  # 0: no end


class TrackingSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Open and click tracking of a tenant or one of its sending domains; ``None`` keeps
    what the level above says (message header > sending domain > tenant > off)."""

    opens: bool | None = None  # add the 1x1 pixel to HTML parts
    clicks: bool | None = None  # rewrite the links of HTML parts
    text_clicks: bool | None = None  # also rewrite bare URLs in text/plain parts
    #: The host tracked links and the pixel point at ("" = the tenant's, else the global
    #: ``signer.tracking.host``): a CNAME of the sender's own brand to Postline's endpoint,
    #: TLS by the operator's ingress.
    host: str = ""


class SendingDomain(msgspec.Struct, frozen=True, kw_only=True):
    """A domain a tenant sends from (MAIL FROM and From header)."""

    name: str  # lower-case, A-labels
    verified: bool = False
    verified_at: float = 0.0
    bounce_domain: str = ""  # the return-path host (SPF/DMARC alignment); "" = bounces.<name>
    dkim: tuple[DkimKeyRecord, ...] = ()
    #: Whether mail from this domain may be sent (a reputation pause of one domain leaves
    #: the tenant's other domains sending).
    status: TenantStatus = TenantStatus()
    ip_pool: str = ""  # the source pool of this domain's mail ("" = the tenant's)
    tracking: TrackingSettings = TrackingSettings()  # over the tenant's settings


class Credential(msgspec.Struct, frozen=True, kw_only=True):
    """An SMTP AUTH login of a tenant (the secret is scrypt, as in the users file)."""

    name: str  # the AUTH user name, unique across tenants
    secret: str  # "scrypt$N$r$p$salt$hash"
    created_at: float
    domains: tuple[str, ...] = ()  # restrict to these of the tenant's domains; () = all


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """An HTTP API key of a tenant: shown once, stored as a hash, known by its prefix."""

    id: str  # the visible prefix, e.g. "pl_3f9a2c1d" (identifies the key in lists and logs)
    hash: str  # SHA-256 hex of the whole key (keys are 256-bit random: no slow hash needed)
    created_at: float
    name: str = ""
    revoked_at: float = 0.0  # 0: valid


class TenantLimits(msgspec.Struct, frozen=True, kw_only=True):
    """What a tenant may send, cluster-wide; 0 means no limit."""

    per_second: float = 0.0  # sustained messages per second ...
    burst: int = 0  # ... with this many at once (0: one second's worth)
    per_hour: int = 0
    per_day: int = 0
    per_month: int = 0
    recipients_per_message: int = 0
    message_size: int = 0  # bytes
    sessions: int = 0  # concurrent SMTP sessions


class ReputationThresholds(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's own reputation thresholds (fractions, 0.05 = 5%); 0 keeps the global one
    from ``[reputation]``."""

    bounce_warning: float = 0.0
    bounce_pause: float = 0.0
    complaint_warning: float = 0.0
    complaint_pause: float = 0.0
    block_warning: float = 0.0
    block_pause: float = 0.0
    min_messages: int = 0  # messages in the window before any rate counts


class ContentRules(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's own attachment policy over ``[ingest.content]``; an empty or zero field
    keeps the global value. Extensions are lower case, without the dot."""

    blocked_extensions: tuple[str, ...] = ()  # refused in addition to the global list
    #: Taken off the global list for this tenant (a software vendor mailing its .msi), and
    #: allowed to hold a program under that name (``detect_executables``).
    allowed_extensions: tuple[str, ...] = ()
    max_attachment_size: int = 0  # bytes, decoded
    max_attachments: int = 0
    signed_changes: str = ""  # "refuse" or "allow"; "" keeps the global


class WebhookEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A URL a tenant receives its events at (the webhooks stage POSTs them, signed per the
    Standard Webhooks specification)."""

    id: str  # "wh_" + 12 hex digits: stable, shown in lists, events and metrics labels
    url: str  # https (http only to loopback, in development)
    #: The signing secret (32 random bytes, ``whsec_`` + base64 for the tenant), sealed with
    #: the installation's key-encryption key (``shared.sealing``) like DKIM keys: the
    #: compacted topic never holds it in the clear.
    sealed_secret: bytes
    created_at: float
    kinds: tuple[str, ...] = ()  # event kinds sent to it; () = every message event kind
    batch: int = 1  # up to this many events per POST (a JSON array past 1)
    description: str = ""
    #: Active, or paused after too many failures (by the webhooks stage) or by an operator;
    #: a paused endpoint's events wait in its retry tiers until it is resumed.
    status: TenantStatus = TenantStatus()


class TenantSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Per-tenant feature settings; later features add fields here (always with defaults)."""

    paused_reply: str = "reject"  # a paused tenant's mail: "reject" (550 5.7.1) or "defer" (451)
    bulk: bool = False  # every message of this tenant is bulk (the bulk lane, unsubscribe)
    bulk_ip_pool: str = ""  # the source pool of this tenant's bulk mail ("" = ip_pool)
    reputation: ReputationThresholds = ReputationThresholds()
    #: Content scanning of this tenant's mail (``[ingest.scanning]``): "" keeps the global
    #: mode; "off"; "tag" (scan, add the verdict's headers, never refuse); "enforce".
    scanning: str = ""
    #: Attachment and content policy over ``[ingest.content]`` (empty fields keep it).
    content: ContentRules = ContentRules()
    tracking: TrackingSettings = TrackingSettings()  # open and click tracking
    #: Every message of this tenant needs TLS with a verified certificate to the MX (the
    #: deliverer defers it otherwise); ``None``: no tenant policy, the message decides.
    require_tls: bool | None = None
    #: Days the reporting store keeps this tenant's events and message metadata (1-3650);
    #: 0 keeps the store's default (``[store] retention_days``).
    retention_days: int = 0


class Tenant(Record, frozen=True, kw_only=True):
    """A business Postline relays for (``postline.tenants``, compacted, key: tenant id).

    A removal is a tombstone. The ``default`` tenant stands for a single-business setup
    (the users file and trusted networks) and needs no record.
    """

    id: str  # short, stable, [a-z0-9-]: appears in records, events, metrics and keys
    name: str = ""
    status: TenantStatus = TenantStatus()
    domains: tuple[SendingDomain, ...] = ()
    credentials: tuple[Credential, ...] = ()
    api_keys: tuple[ApiKey, ...] = ()
    limits: TenantLimits = TenantLimits()
    ip_pool: str = ""  # a deliverer source pool name; "" = the default addresses
    settings: TenantSettings = TenantSettings()
    created_at: float = 0.0
    updated_at: float = 0.0
    revision: int = 0  # +1 on every change (what an audit event's before/after refer to)
    webhooks: tuple[WebhookEndpoint, ...] = ()  # where the tenant's events are POSTed


#: The tenant of mail that matches no tenant record: today's single-business setup.
DEFAULT_TENANT = "default"


class ControlVerb(enum.StrEnum):
    """What an operator asks the running stages to do (the queue verbs: ``shared.queue``)."""

    AUTH_UNBLOCK = "auth_unblock"  # forget AUTH failures of an address or a user name
    #: Hold the target's mail without attempts until resumed (a tombstone) or ``until``.
    QUEUE_SUSPEND = "queue_suspend"
    QUEUE_FLUSH = "queue_flush"  # try the target's deferred mail now
    QUEUE_BOUNCE = "queue_bounce"  # end the target's queued mail as bounced, with a DSN
    QUEUE_DELETE = "queue_delete"  # end the target's queued mail silently
    THROTTLE_CANCEL = "throttle_cancel"  # lift the adaptive throttle of a destination
    #: Refuse a credential's mail (target ``credential:<login>``) until released (a
    #: tombstone): the reputation stage's compromised-account hold, or an operator's.
    CREDENTIAL_HOLD = "credential_hold"


class ControlAction(Record, frozen=True, kw_only=True):
    """An operator's action for the running replicas (``postline.control``, compacted,
    key: verb and target), published by the CLI, applied by every replica that follows it."""

    verb: ControlVerb
    target: str  # what it applies to: an IP address, a user name, "domain:example.com" ...
    at: float
    by: str = ""  # who asked (the CLI's user, an API token's name)
    until: float = 0.0  # queue_suspend: when it ends by itself (0: when resumed)
    why: str = ""  # the operator's reason (bounce: the DSN's diagnostic says it)
    #: Flush, bounce, delete of a message or a domain: the recipient domains its queued mail
    #: goes to (the retry tier records' keys), so the retry loop looks only where they are.
    domains: tuple[str, ...] = ()


class QueueEntry(Record, frozen=True, kw_only=True):
    """A Delivery waiting in a retry tier (``postline.queue``, compacted, key: delivery id).

    Written in the transaction that puts the Delivery in its tier (a deferral or a hold) and
    removed by a tombstone in the one that records how it ended, so the table is the
    deferred queue as of the last commit (``shared.queue.index``). Small on purpose: no
    message data; ``copy_*`` name a record holding the Delivery with its data.
    """

    message_id: str
    delivery_id: str
    domain: str
    recipients: tuple[str, ...]
    at: float  # when this entry was written
    sender: str = ""  # the original envelope sender
    tenant: str = ""
    provider: str = ""  # the destination's provider as last seen ("" = not yet known)
    source: str = ""  # the local address of the last attempt ("" = the OS's, or none yet)
    bulk: bool = False
    is_dsn: bool = False
    size: int = 0  # bytes of the signed message
    attempt: int = 0  # attempts made so far
    submitted_at: float = 0.0
    first_attempt_at: float = 0.0
    last_attempt_at: float = 0.0
    next_attempt: float = 0.0  # the Delivery's not_before
    expires_at: float = 0.0
    tier: str = ""  # the retry tier topic it waits in
    reason: str = ""  # "deferred", or why it is held without an attempt ("suspended", ...)
    detail: str = ""  # the hold's or the failure's words
    last_reply: SmtpReply | None = None
    #: A record with this Delivery's data (the lane record the deliverer last read it from):
    #: ``postline queue show --body`` reads it there. Empty topic: not known.
    copy_topic: str = ""
    copy_partition: int = -1
    copy_offset: int = -1


class QueueLoad(msgspec.Struct, frozen=True, kw_only=True):
    """What one deliverer holds in memory for one destination, tenant, source and lane."""

    domain: str
    provider: str = ""
    tenant: str = ""
    source: str = ""
    lane: str = ""
    window: int = 0  # in the domain window, waiting for a connection
    in_flight: int = 0  # in an SMTP transaction now
    oldest: float = 0.0  # the earliest submitted_at among them (0: unknown)
    last_error: str = ""  # the destination's last temporary failure, in words
    last_error_at: float = 0.0
    throttled_until: float = 0.0  # the adaptive throttle's suspension (0: none)


class QueueSnapshot(Record, frozen=True, kw_only=True):
    """One deliverer replica's live queue state (``postline.queue.live``, compacted, key:
    the replica's instance id), published every ``deliverer.queue_snapshot_interval``;
    a snapshot older than three intervals is a replica that is gone."""

    instance: str
    at: float
    interval: float
    loads: tuple[QueueLoad, ...] = ()
    pending: dict[str, int] = {}  # per lane: fetched from the bus and not yet committed
    truncated: int = 0  # loads left out to keep the record small
    stopped: bool = False  # the replica's last word: it stopped


class ReputationCounts(msgspec.Struct, frozen=True, kw_only=True):
    """What happened to one scope's mail in one hour (final outcomes and feedback)."""

    sent: int = 0  # final outcomes: delivered + bounced + expired
    delivered: int = 0
    hard_bounces: int = 0  # permanent failures about the address (bad mailbox, no domain)
    soft_bounces: int = 0  # permanent failures that are not about the address, and expiries
    blocks: int = 0  # provider policy rejections (RFC 3463 X.7.x, block rules)
    complaints: int = 0
    unsubscribes: int = 0
    deferred: int = 0  # temporary failures (attempts, not messages)


class ReputationBucket(msgspec.Struct, frozen=True, kw_only=True):
    """The counts of one UTC hour (``hour`` = Unix time // 3600)."""

    hour: int
    counts: ReputationCounts = ReputationCounts()


class WarmupState(msgspec.Struct, frozen=True, kw_only=True):
    """Where a warming source address stands with one provider (``[pools.warmup]``).

    ``day`` is a UTC day number (Unix time // 86400); ``allowance`` is what the address may
    send to the provider on that day and ``sent`` what it has (attempts, counted from the
    deliverer's events).
    """

    step: int = 0  # index in the warm-up schedule
    day: int = 0
    allowance: int = 0
    sent: int = 0
    deferred: int = 0
    bounced: int = 0
    complained: int = 0
    started_day: int = 0  # the first day this address sent while warming
    health: str = "advancing"  # advancing | holding | stepping_back | warm
    changed_at: float = 0.0


class CredentialBucket(msgspec.Struct, frozen=True, kw_only=True):
    """What one credential sent in one bucket of time (``index`` = Unix time // bucket)."""

    index: int
    messages: int = 0  # accepted messages
    recipients: int = 0  # their recipients
    domains: int = 0  # distinct recipient domains
    scanned: int = 0  # content scanner verdicts
    spam: int = 0  # verdicts rejected, soft_rejected or quarantined
    hard_bounces: int = 0  # hard bounces of its messages


class CredentialWindow(msgspec.Struct, frozen=True, kw_only=True):
    """A credential's recent sending, for compromised-account detection (the reputation
    stage's ``[reputation.credentials]``): per-bucket counts, oldest first, and whether it
    is held."""

    bucket: float  # the bucket length, seconds (a change of it starts the window afresh)
    buckets: tuple[CredentialBucket, ...] = ()
    #: The recipient domains of the newest bucket (to count distinct ones; bounded).
    newest_domains: tuple[str, ...] = ()
    held: bool = False
    held_since: float = 0.0
    why: str = ""  # the explanation of the hold


class Reputation(Record, frozen=True, kw_only=True):
    """One scope's reputation (``postline.reputation``, compacted, key: ``key``).

    Scopes: ``tenant`` (key ``tenant|<id>``), ``domain`` (``domain|<tenant>|<domain>``),
    ``provider`` (``provider|<tenant>|<provider>``), ``address`` (``address|<ip>|<provider>``,
    the warm-up state) and ``credential`` (``credential|<login>``, compromised-account
    detection). Written only by the reputation stage; read by ingest, the deliverer,
    the CLI and the metrics.
    """

    key: str
    scope: str
    tenant: str = ""
    domain: str = ""
    provider: str = ""
    address: str = ""
    buckets: tuple[ReputationBucket, ...] = ()  # the rolling window, oldest first
    level: str = "ok"  # ok | warning | paused
    level_since: float = 0.0
    warmup: WarmupState | None = None
    updated_at: float = 0.0
    #: Scope ``credential`` (key ``credential|<login>``): the credential's window.
    credential: CredentialWindow | None = None


class Quarantined(Record, frozen=True, kw_only=True):
    """A message the content scanner held back (``postline.quarantine``, compacted, key: the
    message id). Releasing it publishes ``submission`` to ``postline.submitted`` and a
    tombstone here in one transaction, so it goes to the signer as if just accepted;
    deleting it is the tombstone alone."""

    submission: Submission
    at: float  # when it was quarantined
    scanner: str = "rspamd"
    action: str = ""  # the scanner's own action ("add header", "rewrite subject", ...)
    score: float = 0.0
    required: float = 0.0  # the scanner's threshold for its action
    symbols: dict[str, float] = {}  # the top symbols and their scores
    reference: str = ""  # the id the client was given in its reply


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


class DeadLetterState(Record, frozen=True, kw_only=True):
    """What became of one dead letter (``postline.dead.state``, compacted, key
    ``<partition>:<offset>`` of the dead letter on ``postline.dead``).

    ``postline.dead`` itself is an append-only log (kept 30 days, keyed by the original
    topic, which its writers choose): a dead letter cannot be removed from it, so what an
    operator did with one is kept beside it here (``shared.deadletters``).
    """

    partition: int
    offset: int
    topic: str = ""  # the original topic (so a listing needs no second lookup)
    state: str  # "redriven", "purged", or "dead" (a redrive was refused: ``note`` says why)
    at: float
    by: str = ""
    note: str = ""


class WebhookAttempt(Record, frozen=True, kw_only=True):
    """One event waiting to be POSTed again to one webhook endpoint
    (``postline.webhooks.retry.<tier>``, key: ``<tenant>|<endpoint id>``).

    Written by the webhooks stage when an attempt failed (or the endpoint's circuit was open
    or it was paused) and by ``postline webhooks replay``; the stage reads it back when
    ``not_before`` is due. Past the stage's ``max_age`` it becomes a dead letter on
    ``postline.dead`` (``postline webhooks redrive`` puts it back).
    """

    tenant: str
    endpoint: str  # the WebhookEndpoint id
    event_id: str  # shared.wire.eventjson.event_id of the event's bytes: the same every time
    payload: bytes  # the event's JSON object (shared.wire.eventjson.event_object), UTF-8
    event_at: float = 0.0  # when the event happened (the event-to-acknowledgement latency)
    attempt: int = 0  # attempts made so far
    first_at: float = 0.0  # when the first attempt failed (the age counts from here)
    not_before: float = 0.0  # due at; 0 = at once
    error: str = ""  # why the last attempt failed


class MtaStsPolicy(Record, frozen=True, kw_only=True):
    """A recipient domain's MTA-STS policy as last fetched (``postline.mta-sts``, compacted,
    key: the domain, lower case).

    Written by whichever deliverer replica fetched it (RFC 8461 3.3); every replica follows the
    topic, so one fetch serves all of them and the cache outlives restarts (RFC 8461 5.1:
    a cached policy is used until ``fetched_at + max_age``, also when a refetch fails).
    """

    domain: str
    policy_id: str  # the ``id`` of the ``_mta-sts`` TXT record when it was fetched
    mode: str  # "enforce", "testing" or "none"
    max_age: int  # seconds, from the policy
    mx: tuple[str, ...] = ()  # the ``mx`` patterns
    lines: tuple[str, ...] = ()  # the policy's lines (TLS-RPT's policy-string)
    fetched_at: float  # when it was fetched (epoch seconds)


class TlsRptFailure(msgspec.Struct, frozen=True, kw_only=True):
    """One RFC 8460 4.4 failure-details row: the sessions that failed the same way."""

    result_type: str  # RFC 8460 4.3 ("starttls-not-supported", "validation-failure", ...)
    sending_mta_ip: str = ""  # our source address ("" when the OS chose it)
    receiving_mx_hostname: str = ""
    receiving_ip: str = ""
    failure_reason_code: str = ""  # the deliverer's detail, shortened
    count: int = 0


class TlsRptPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """One policy's sessions of one day (RFC 8460 4.4 ``policies[]``)."""

    policy_type: str  # "sts", "tlsa" or "no-policy-found"
    policy_strings: tuple[str, ...] = ()
    mx_patterns: tuple[str, ...] = ()
    successful: int = 0
    failed: int = 0
    failures: tuple[TlsRptFailure, ...] = ()


class TlsRpt(Record, frozen=True, kw_only=True):
    """TLS-RPT state of one policy domain and UTC day (``postline.tlsrpt``, compacted).

    Two kinds, told apart by ``state``: ``counts`` (key ``counts|<day>|<domain>|<p>``) holds
    the sessions counted from partition ``p`` of ``postline.events``, written by the bouncer
    replica owning that partition in the transaction of the events it counted (so replicas
    never overwrite each other and a replay never counts twice); ``sent``, ``failed`` or
    ``no_rua`` (key ``done|<day>|<domain>``) says the day's report is settled, written by the
    one replica that sends it. ``day`` is ``YYYY-MM-DD`` (UTC).
    """

    domain: str
    day: str
    state: str = "counts"  # counts | sent | failed | no_rua
    partition: int = -1  # counts: the events partition counted
    policies: tuple[TlsRptPolicy, ...] = ()
    updated_at: float = 0.0
    report_id: str = ""  # settled: the report's id
    detail: str = ""  # settled: where it went, or why not

"""Which fields each event kind carries in its JSON object: the published contract.

One :class:`KindSpec` per :class:`~shared.wire.records.EventKind`, read off every writer of
the kind in ``services/`` and ``shared/`` (``tests/shared/wire/test_eventkinds.py`` runs
those writers and fails when one sets a field its kind does not declare). A field is
*required* when every writer of the kind always gives it a value; the others appear when
they have one (``shared.wire.eventjson`` leaves empty values out).

:func:`shared.wire.eventjson.event_object` publishes only the declared fields, so this
table is what webhooks and ``postline events tail --json`` promise, and the JSON Schema
(``shared.wire.eventschema``) and ``docs/events.md`` are generated from it. It does not
encode or validate anything itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.wire.records import EventKind


@dataclass(frozen=True)
class FieldSpec:
    """One field of a kind's ``data`` object."""

    name: str
    required: bool
    doc: str  # what the field means for this kind


@dataclass(frozen=True)
class KindSpec:
    """What one kind of event says and which fields say it."""

    kind: EventKind
    summary: str
    fields: tuple[FieldSpec, ...]

    def names(self) -> frozenset[str]:
        """The declared field names."""
        return frozenset(f.name for f in self.fields)


#: What a field means when a kind says nothing more specific.
FIELD_DOCS: Mapping[str, str] = {
    "message_id": "The message's id: ingest's `250 2.0.0 queued as <id>`, the sending API's `id`.",
    "recipient": "The recipient address (envelope RCPT TO) the event is about.",
    "domain": "The recipient's domain.",
    "delivery_id": "The copy of the message for one recipient domain (the signer makes one "
    "per domain); the same across that copy's retries.",
    "sender": "The envelope sender (MAIL FROM); absent for the null reverse-path `<>`.",
    "reply": "The SMTP reply: `code`, `enhanced` status (RFC 3463, may be empty) and `text`.",
    "mx": "The host that answered (the recipient's MX or a smarthost).",
    "provider": "The mailbox provider of that host: google, microsoft, yahoo, ... or other.",
    "tls": "The TLS version of the SMTP session (`TLSv1.3`); absent when it was plaintext.",
    "attempt": "The delivery attempt (1 = the first).",
    "classification": "The outcome in one word.",
    "check": "The check or component that decided.",
    "detail": "What happened, in words, for people (not a stable format: do not parse it).",
    "tags": "The tags the message was submitted with (name -> value).",
    "stage": "The Postline stage that wrote the event: ingest, signer, deliverer, bouncer, "
    "reputation or webhooks; admin, cli or api for an operator's action.",
    "bulk": "The message is bulk mail (the bulk lane, unsubscribe headers); absent: transactional.",
    "tenant": "The tenant (the sending business) the event belongs to.",
    "by": "Who acted: `cli:<login>`, `api:<address>`, or a stage.",
    "before": "The tenant as it was (as `postline tenant show` prints it: no secrets); absent "
    "when it was added.",
    "after": "The tenant as it is now (no secrets); absent when it was removed.",
    "source": "The local address the attempt was sent from (absent: the system's choice).",
    "scope": "What the decision is about.",
    "figures": "The numbers behind the decision, by name.",
    "credential": "The SMTP AUTH login or API key id the message was submitted with (absent "
    "when relayed from a trusted network).",
    "symbols": "The content scanner's top symbols and their scores.",
    "recipients": "How many recipients the message was accepted for.",
    "recipient_domains": "Their distinct domains, sorted.",
    "reason": "Why, in one word: a bounce reason of docs/bounce-reasons.md (`userunknown`, "
    "`mailboxfull`, `blocked`, ...).",
    "original_recipient": "The recipient the report names as the one the sender gave (RFC 3464 "
    "Original-Recipient), when it differs from `recipient` (forwarding, aliases).",
    "dsn_notify": "The recipient's NOTIFY (RFC 3461): `NEVER`, or some of `SUCCESS`, "
    "`FAILURE`, `DELAY`; absent: not given (a DSN on failure only).",
    "dsn_orcpt": "The recipient as the sender first knew it (RFC 3461 ORCPT, decoded), as "
    "`addr-type;address` (`rfc822;Bob@example.org`); absent: not given.",
    "dsn_ret": "The sender's RET (RFC 3461): `FULL` or `HDRS`; absent: not given.",
    "dsn_envid": "The sender's envelope id (RFC 3461 ENVID, decoded); absent: not given.",
    "dsn_passed": "The MX offered DSN and was given the sender's DSN parameters: it, not "
    "Postline, sends the success notice (RFC 3461 5.2.1).",
    "url": "The link's original URL (from the signed token, never from the request).",
    "link": "The link's number in the message (1 = the first tracked link).",
    "agent": "The class of the user agent: browser, mail_client, apple_mpp, gmail_proxy, "
    "scanner, bot or unknown.",
    "machine": "Made by a machine (a privacy proxy fetching every image, a security scanner "
    "following every link), not by the recipient; absent: a person, as far as we can tell.",
    "client_ip": "The address the request came from.",
    "tls_security": "What governed the SMTP session's transport security: `none` "
    "(plaintext), `opportunistic`, `mta-sts`, `dane` or `required` (Postline's own policy).",
    "tls_verified": "The MX host's certificate was verified (WebPKI or DANE TLSA).",
    "tls_cipher": "The TLS cipher suite negotiated; absent when plaintext.",
    "mx_address": "The address of the MX host connected to.",
    "tls_failure": "The RFC 8460 result type of the failed check (`starttls-not-supported`, "
    "`certificate-host-mismatch`, `validation-failure`, ...); absent when it succeeded.",
    "tls_policy_domain": "The domain whose MTA-STS policy or TLSA records applied.",
    "tls_policy_type": "`sts`, `tlsa` or `no-policy-found` (RFC 8460).",
    "tls_policy": "The policy as RFC 8460 reports it: the MTA-STS policy's lines or the "
    "TLSA records.",
    "tls_mx_patterns": "The MTA-STS policy's `mx` patterns.",
    "requiretls": "The message was sent with REQUIRETLS (RFC 8689): the DSN or notice made "
    "of this event goes to the sender with REQUIRETLS too.",
    "subject": "The message's Subject header, RFC 2047 encoded words decoded, cut to 200 "
    "characters; absent when the message has none.",
}


def _kind(
    kind: EventKind,
    summary: str,
    required: str,
    optional: str = "",
    **docs: str,
) -> KindSpec:
    """A kind's spec from space-separated field names; ``docs`` override ``FIELD_DOCS``."""
    fields = [
        FieldSpec(name, is_required, docs.get(name, FIELD_DOCS[name]))
        for names, is_required in ((required, True), (optional, False))
        for name in names.split()
    ]
    return KindSpec(kind, summary, tuple(fields))


_DELIVERY = (
    "delivery_id sender mx provider tls tls_security tls_verified tls_cipher attempt tags "
    "tenant bulk source dsn_notify dsn_orcpt dsn_ret dsn_envid"
)
_REPORT = "mx provider check detail tenant original_recipient"
_BOUNCE_CLASS = (
    "The deliverer's outcome (`bounced`, `deferred`), or the bouncer's class for a report "
    "(`hard`, `soft`, `block`, ...), or `operator` (an operator's `postline queue bounce`)."
)

KINDS: Mapping[EventKind, KindSpec] = {
    spec.kind: spec
    for spec in (
        _kind(
            EventKind.ACCEPTED,
            "Ingest accepted the message (it answered 250 once the message was stored "
            "durably): one event per message. It travels inside the message and appears "
            "when the signer takes the message, with `at` the time of the 250.",
            "message_id stage tenant recipients recipient_domains",
            "sender tls credential tags detail subject",
            recipients="How many recipients the message was accepted for (suppressed ones "
            "have a `suppressed` event instead).",
        ),
        _kind(
            EventKind.REJECTED,
            "Ingest refused a message or one recipient (the client got the reply).",
            "message_id reply check detail stage",
            "recipient domain sender tls tenant credential",
            message_id="The transaction's id (a new one when refused before MAIL FROM: "
            "no message exists then).",
            check="The check that refused (`relay`, `sender_domain`, `user_rate`, `size`, "
            "`suppression`, ...).",
            tenant="The tenant (absent when refused before MAIL FROM: not known yet).",
        ),
        _kind(
            EventKind.SIGNED,
            "The signer signed the message and handed its copies to the deliverer.",
            "message_id check detail stage",
            "sender tags tenant bulk",
            check="`dkim`.",
            detail="The keys used, the number of copies, the bulk rule and a send-at hold.",
        ),
        _kind(
            EventKind.DELIVERED,
            "A recipient's MX accepted the message (a 2xx reply): one per recipient.",
            "message_id recipient domain delivery_id reply attempt classification stage",
            "sender mx provider tls tls_security tls_verified tls_cipher tags tenant bulk source "
            "dsn_notify dsn_orcpt dsn_ret dsn_envid dsn_passed requiretls",
            classification="`delivered`.",
        ),
        _kind(
            EventKind.DEFERRED,
            "A temporary failure: the deliverer retries later (a 4xx reply or a connection "
            "failure), or a delayed-delivery report came back.",
            "message_id recipient domain classification stage",
            f"reply reason {_DELIVERY} check detail original_recipient requiretls",
            classification=_BOUNCE_CLASS,
        ),
        _kind(
            EventKind.BOUNCED,
            "A permanent failure: a 5xx reply, an asynchronous bounce (DSN) or an operator's "
            "bounce from the queue. The sender gets a DSN unless the mail was bulk.",
            "message_id recipient domain classification stage",
            f"reply reason {_DELIVERY} check detail original_recipient by requiretls",
            classification=_BOUNCE_CLASS,
            check="The bouncer's rule that classified the report, or the operator's verb.",
        ),
        _kind(
            EventKind.EXPIRED,
            "The message could not be delivered to the recipient before its maximum age.",
            "message_id recipient domain delivery_id reply classification reason stage",
            "sender attempt detail tags tenant bulk dsn_notify dsn_orcpt dsn_ret dsn_envid "
            "requiretls",
            classification="`expired`.",
            detail="The last temporary failure's reply.",
        ),
        _kind(
            EventKind.COMPLAINED,
            "The recipient reported the message as spam (a feedback report, ARF).",
            "message_id recipient domain classification stage",
            f"reply reason {_REPORT}",
            classification="`complaint`.",
        ),
        _kind(
            EventKind.UNSUBSCRIBED,
            "The recipient unsubscribed (List-Unsubscribe one-click POST or mailto).",
            "message_id recipient domain detail stage",
            "tenant",
            detail="How (`via one-click`, `via mailto`) and for which senders.",
        ),
        _kind(
            EventKind.SUPPRESSED,
            "The recipient is on the suppression list: the message was not sent to it.",
            "message_id recipient domain check stage",
            "sender tags tenant credential bulk",
            check="`suppression`.",
        ),
        _kind(
            EventKind.AUTO_REPLIED,
            "An automatic reply (out of office, RFC 3834) came back; never a bounce.",
            "message_id recipient domain classification stage",
            f"reply reason {_REPORT}",
            classification="`auto_reply`.",
        ),
        _kind(
            EventKind.THROTTLED,
            "The deliverer changed its pace to a destination domain (adaptive throttling "
            "after 421 or 4.7.x replies).",
            "domain classification detail stage",
            "provider reply",
            domain="The destination domain.",
            classification="`throttle`, `ramp`, `recover` or `cancel` (an operator's).",
            reply="The reply that caused it.",
        ),
        _kind(
            EventKind.FAILED,
            "A stage could not process the message (no DKIM key allowed to sign it); it was "
            "not sent.",
            "message_id check detail stage",
            "sender tags tenant",
            check="`dkim`.",
        ),
        _kind(
            EventKind.TENANT_CHANGED,
            "An operator changed a tenant (the audit trail of `postline tenant ...` and the "
            "admin API).",
            "tenant by stage",
            "detail before after",
            detail="The change: `add`, `set per_day`, `pause: <why>`, `credential add NAME`...",
        ),
        _kind(
            EventKind.REPUTATION,
            "A reputation decision about a tenant, sending domain, provider or source address.",
            "scope classification detail stage",
            "tenant domain provider source figures",
            scope="`tenant`, `domain`, `provider` or `address`.",
            classification="`warning`, `paused`, `recovered`, `warmup_advanced`, "
            "`warmup_held` or `warmup_stepped_back`.",
            domain="The sending domain (scope `domain`).",
            source="The source address (scope `address`: its warm-up).",
            figures="The counts and rates behind the decision.",
        ),
        _kind(
            EventKind.DEAD_LETTER,
            "An operator acted on a dead letter (the audit trail of `postline dead ...`).",
            "classification detail stage",
            "by",
            classification="`redriven`, `purged` or `redrive_refused`.",
            detail="Which record and why.",
        ),
        _kind(
            EventKind.QUEUE_ACTION,
            "An operator acted on the queue (`postline queue ...` or the admin API).",
            "classification detail stage",
            "message_id domain tenant by",
            classification="The verb: `queue_suspend`, `queue_flush`, `queue_bounce`, ...",
            detail="The target and the action's terms.",
            domain="The target domain (a domain target).",
            tenant="The target tenant (a tenant target).",
            message_id="The target message (a message target).",
        ),
        _kind(
            EventKind.DELETED,
            "An operator deleted the recipient's queued mail (`postline queue delete`): it is "
            "not sent and no DSN goes back.",
            "message_id recipient domain delivery_id reply classification check detail stage",
            "sender attempt tags tenant by bulk",
            classification="`operator`.",
            check="The verb (`queue_delete`).",
        ),
        _kind(
            EventKind.SCANNED,
            "The content scanner's verdict on a message at ingest.",
            "message_id check classification detail stage",
            "sender tls tenant credential figures symbols",
            check="The scanner (`rspamd`).",
            classification="`clean`, `tagged`, `rejected`, `soft_rejected`, `quarantined`, "
            "`skipped` or `unavailable`.",
            figures="`score` and `required` (the scanner's threshold).",
            detail="The reference id the client was given and what was done.",
        ),
        _kind(
            EventKind.QUARANTINE,
            "An operator released or deleted a quarantined message.",
            "message_id classification stage",
            "sender tenant tags check by detail figures symbols",
            classification="`released` or `deleted`.",
            check="The scanner that quarantined it.",
            figures="`score`, `required`, `quarantined_at` and `received_at` (Unix seconds).",
        ),
        _kind(
            EventKind.CREDENTIAL,
            "A credential was held (suspected compromised) or released.",
            "credential scope classification stage",
            "tenant detail figures by",
            credential="The SMTP AUTH login or API key id.",
            scope="`credential`.",
            classification="`held` or `released`.",
            figures="What rose and its baseline.",
            detail="The explanation.",
        ),
        _kind(
            EventKind.OPENED,
            "The recipient's mail client loaded the tracking pixel.",
            "message_id recipient agent stage",
            "domain tenant machine client_ip",
        ),
        _kind(
            EventKind.CLICKED,
            "The recipient followed a tracked link.",
            "message_id recipient url link agent stage",
            "domain tenant machine client_ip",
        ),
        _kind(
            EventKind.TRACKING,
            "The signer left the message's links and pixel alone; the message went untouched.",
            "message_id classification stage",
            "sender tags tenant check detail bulk",
            classification="Why: `unparseable`, `too_large`, `signed_content`, ...",
            check="The component that decided (`tracking`).",
        ),
        _kind(
            EventKind.WEBHOOK,
            "A webhook endpoint changed state.",
            "classification detail stage",
            "tenant by",
            classification="`paused`, `resumed`, `dead_lettered` or `redriven`.",
            detail="The endpoint id and why.",
        ),
        _kind(
            EventKind.TLS_SESSION,
            "The deliverer connected to an MX host (or failed its transport security check).",
            "domain mx tls_security tls_policy_type stage",
            "mx_address source provider tls tls_cipher tls_verified tls_failure "
            "tls_policy_domain tls_policy tls_mx_patterns detail",
            detail="Why the check failed, in words (RFC 8460 failure-reason-code).",
        ),
    )
}

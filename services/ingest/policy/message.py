"""Checks on the DATA block: smuggling, field names, a usable From header, anti-spoofing on
From and Sender, a paused sending domain in From, a usable send-at header, a DKIM-signed
message ingest would break (``signatures.py``) and attachments (``attachments.py``, last:
it is the only one that may walk the whole message).

Adding trace and missing headers and taking control headers is not a check; it happens
after these pass (``headers.complete``, ``headers.take_tags``).
"""

from __future__ import annotations

from services.ingest import replies, smuggling
from services.ingest.headers import Message, bad_field_name, from_domains, mailbox_domains
from services.ingest.policy.attachments import attachments
from services.ingest.policy.base import (
    Decision,
    PolicyState,
    SessionInfo,
    Transaction,
    first_decision,
)
from services.ingest.policy.signatures import signed_changes
from shared import sendat


def bare_line_ends(
    state: PolicyState, session: SessionInfo, txn: Transaction, data: bytes, msg: Message
) -> Decision | None:
    """A bare CR or LF is refused unless configured to be normalised (RFC 5321 2.3.8)."""
    if state.config.smuggling == "refuse" and smuggling.has_bare_cr_or_lf(data):
        return Decision(replies.SMUGGLING, "smuggling")
    return None


def header_names(
    state: PolicyState, session: SessionInfo, txn: Transaction, data: bytes, msg: Message
) -> Decision | None:
    """RFC 5322 2.2: a field name is printable US-ASCII. A NUL or control character in one
    is refused here (550 5.6.0, a permanent content error, RFC 3463 X.6.0) rather than
    passed on to fail at signing or at the recipient."""
    return Decision(replies.BAD_HEADER, "header_name") if bad_field_name(msg) else None


def from_header(
    state: PolicyState, session: SessionInfo, txn: Transaction, data: bytes, msg: Message
) -> Decision | None:
    """RFC 5322 3.6: exactly one From field, with addresses (RFC 6409 8 does not add it)."""
    return None if from_domains(msg) else Decision(replies.NO_FROM, "from_header")


def from_domain(
    state: PolicyState, session: SessionInfo, txn: Transaction, data: bytes, msg: Message
) -> Decision | None:
    """An authenticated user's From header domains must all be its own."""
    if session.user is None:
        return None
    for domain in from_domains(msg) or []:
        if not state.may_send_from(session.user, domain):
            return Decision(replies.from_not_allowed(domain), "from_domain")
    return None


def from_domain_state(
    state: PolicyState, session: SessionInfo, txn: Transaction, data: bytes, msg: Message
) -> Decision | None:
    """A From header domain that is a paused sending domain of the tenant is refused like
    the envelope sender's (the From domain is the one recipients and DMARC see, and the one
    whose reputation the pause protects)."""
    for domain in from_domains(msg) or []:
        paused = state.paused_domain(txn.tenant, domain)
        if paused is not None:
            defer = state.tenant(txn.tenant).settings.paused_reply == "defer"
            reply = replies.domain_paused(paused.name, paused.status.why, defer)
            return Decision(reply, "domain_paused")
    return None


def sender_header(
    state: PolicyState, session: SessionInfo, txn: Transaction, data: bytes, msg: Message
) -> Decision | None:
    """An authenticated user's Sender header (RFC 5322 3.6.2), when present, must be one
    well-formed mailbox in its own domains: mail clients show "on behalf of" it."""
    if session.user is None:
        return None
    values = msg.get("sender")
    if not values:
        return None
    domains = mailbox_domains(values[0]) if len(values) == 1 else None
    if domains is None or len(domains) != 1:
        return Decision(replies.BAD_SENDER, "sender_header")
    if not state.may_send_from(session.user, domains[0]):
        return Decision(replies.sender_header_not_allowed(domains[0]), "sender_header")
    return None


def tenant_size(
    state: PolicyState, session: SessionInfo, txn: Transaction, data: bytes, msg: Message
) -> Decision | None:
    """The tenant's message size (552 5.3.4, as for the listener's SIZE, RFC 1870)."""
    limit = state.tenant(txn.tenant).limits.message_size
    if limit and len(data) > limit:
        return Decision(replies.TENANT_TOO_BIG, "tenant_size")
    return None


def deliver_after(
    state: PolicyState, session: SessionInfo, txn: Transaction, data: bytes, msg: Message
) -> Decision | None:
    """``X-Postline-Deliver-After`` (``shared.sendat``), when present, is one RFC 3339 time
    or delay in seconds, not in the past and at most 72 hours ahead (550 5.6.0 naming the
    problem otherwise: sending the message at once is not what was asked for)."""
    values = msg.get(sendat.HEADER)
    if not values:
        return None
    if len(values) > 1:
        return Decision(replies.bad_deliver_after("given more than once"), "deliver_after")
    now = state.clock()
    try:
        sendat.check(sendat.parse_header(values[0], now), now)
    except sendat.SendAtError as exc:
        return Decision(replies.bad_deliver_after(str(exc)), "deliver_after")
    return None


CHECKS = (
    bare_line_ends,
    header_names,
    tenant_size,
    from_header,
    from_domain,
    from_domain_state,
    sender_header,
    deliver_after,
    signed_changes,
    attachments,
)


def run(
    state: PolicyState, session: SessionInfo, txn: Transaction, data: bytes, msg: Message
) -> Decision | None:
    """The first message check that decides."""
    return first_decision(CHECKS, state, session, txn, data, msg)

"""Checks at MAIL FROM: address form, a held credential, the tenant's and the sending
domain's state,
anti-spoofing on the envelope sender,
message rates per user and address (the tenant's cluster-wide limits are asked of the limiter
by ``handler.py``: that check is not a pure function).

SIZE is checked by aiosmtpd before these run (RFC 1870: the declared size).
"""

from __future__ import annotations

from services.ingest import replies
from services.ingest.policy.base import (
    Decision,
    PolicyState,
    SessionInfo,
    Transaction,
    first_decision,
)
from shared.credential_holds import REFUSAL
from shared.wire.records import TenantState

#: Retry-After of the HTTP API's refusal of a held credential: a release takes a person.
HELD_RETRY_AFTER = 600.0


def utf8_address(state: PolicyState, session: SessionInfo, txn: Transaction) -> Decision | None:
    """RFC 6531 3.4: a non-ASCII address needs the SMTPUTF8 parameter on MAIL FROM."""
    if not txn.smtputf8 and not txn.mail_from.isascii():
        return Decision(replies.NEEDS_SMTPUTF8, "smtputf8")
    return None


def requiretls_over_tls(
    state: PolicyState, session: SessionInfo, txn: Transaction
) -> Decision | None:
    """RFC 8689 4: REQUIRETLS on MAIL FROM is only valid in a TLS session; in cleartext the
    sender's demand could not even be met on the hop to us, so it is refused (530 5.7.10)."""
    if txn.requiretls and not session.tls:
        return Decision(replies.REQUIRETLS_NEEDS_TLS, "requiretls")
    return None


def credential_held(state: PolicyState, session: SessionInfo, txn: Transaction) -> Decision | None:
    """A held credential (``postline credential``, or the reputation stage's
    compromised-account detection) sends nothing until released: 451 4.7.1 with the reason
    and a reference. AUTH itself succeeded, so the client sees why, not a password error."""
    if state.credential_holds.get(txn.credential) is None:
        return None
    reply = replies.credential_held(REFUSAL, txn.id)
    return Decision(reply, "credential_held", retry_after=HELD_RETRY_AFTER)


def tenant_state(state: PolicyState, session: SessionInfo, txn: Transaction) -> Decision | None:
    """A paused or disabled tenant sends nothing: 550 5.7.1 with the operator's reason (or
    451 with ``paused_reply = "defer"``, so the business's queue holds the mail)."""
    tenant = state.tenant(txn.tenant)
    if tenant.status.state is TenantState.ACTIVE:
        return None
    defer = tenant.settings.paused_reply == "defer"
    return Decision(replies.tenant_paused(tenant.status.why, defer), "tenant_paused")


def domain_state(state: PolicyState, session: SessionInfo, txn: Transaction) -> Decision | None:
    """A paused or disabled sending domain sends nothing, while the tenant's other domains
    do: the reply names the domain and the reason (the tenant's ``paused_reply`` decides
    550 or 451, as for a paused tenant)."""
    paused = state.paused_domain(txn.tenant, txn.sender_domain) if txn.sender_domain else None
    if paused is None:
        return None
    defer = state.tenant(txn.tenant).settings.paused_reply == "defer"
    return Decision(replies.domain_paused(paused.name, paused.status.why, defer), "domain_paused")


def sender_domain(state: PolicyState, session: SessionInfo, txn: Transaction) -> Decision | None:
    """An authenticated user may use only its own domains as envelope sender.

    The null reverse-path names no domain to spoof (RFC 5321 4.5.5: an app's DSNs and
    auto-replies must use it); the From header is still checked at DATA.
    """
    user = session.user
    if user is None or not txn.mail_from:
        return None
    domain = txn.sender_domain
    if not state.may_send_from(user, domain):
        return Decision(replies.sender_not_allowed(domain or "<>"), "sender_domain")
    return None


def user_rate(state: PolicyState, session: SessionInfo, txn: Transaction) -> Decision | None:
    """Messages per authenticated user (token bucket)."""
    if session.user is not None and not state.user_rates.take(session.user.name):
        return Decision(replies.RATE_LIMITED, "user_rate")
    return None


def ip_rate(state: PolicyState, session: SessionInfo, txn: Transaction) -> Decision | None:
    """Messages per client address (token bucket)."""
    if not state.ip_rates.take(session.ip):
        return Decision(replies.RATE_LIMITED, "ip_rate")
    return None


CHECKS = (
    utf8_address,
    requiretls_over_tls,
    credential_held,
    tenant_state,
    domain_state,
    sender_domain,
    user_rate,
    ip_rate,
)


def run(state: PolicyState, session: SessionInfo, txn: Transaction) -> Decision | None:
    """The first MAIL FROM check that decides."""
    return first_decision(CHECKS, state, session, txn)

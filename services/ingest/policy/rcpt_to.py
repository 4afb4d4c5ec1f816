"""Checks at RCPT TO: address form, relay control, the recipient limit, the suppression list."""

from __future__ import annotations

from services.ingest import replies
from services.ingest.policy.base import (
    Decision,
    PolicyState,
    SessionInfo,
    Transaction,
    first_decision,
)


def utf8_address(
    state: PolicyState, session: SessionInfo, txn: Transaction, rcpt: str
) -> Decision | None:
    """RFC 6531 3.4: a non-ASCII recipient needs a transaction started with SMTPUTF8."""
    if not txn.smtputf8 and not rcpt.isascii():
        return Decision(replies.NEEDS_SMTPUTF8, "smtputf8")
    return None


def relay(state: PolicyState, session: SessionInfo, txn: Transaction, rcpt: str) -> Decision | None:
    """Without AUTH only trusted networks may relay (no open relay, RFC 5321 3.9)."""
    if session.authenticated or state.trusted(session.ip):
        return None
    return Decision(replies.RELAY_DENIED, "relay")


def recipient_limit(
    state: PolicyState, session: SessionInfo, txn: Transaction, rcpt: str
) -> Decision | None:
    """RFC 5321 4.5.3.1.10: past the limit answer 452 and let the client send the rest later."""
    if len(txn.rcpt_to) >= state.config.limits.max_recipients:
        return Decision(replies.TOO_MANY_RECIPIENTS, "recipient_limit")
    return None


def suppression(
    state: PolicyState, session: SessionInfo, txn: Transaction, rcpt: str
) -> Decision | None:
    """A suppressed recipient is refused (550 5.1.1) or accepted and dropped, per config.

    Only global and tenant suppressions: one scoped to a sender domain is an unsubscribe from
    its bulk mail, and whether this message is bulk is known only from its headers and tags,
    so the signer decides (a password reset to someone who unsubscribed must still go out).
    """
    if not state.suppressions.is_suppressed(rcpt, tenant=txn.tenant):
        return None
    if state.config.suppression == "drop":
        return Decision(replies.RCPT_OK, "suppression", drop=True)
    return Decision(replies.SUPPRESSED, "suppression")


def tenant_recipients(
    state: PolicyState, session: SessionInfo, txn: Transaction, rcpt: str
) -> Decision | None:
    """The tenant's recipients per message (452 4.5.3: the client sends the rest in another
    transaction, RFC 5321 4.5.3.1.10)."""
    limit = state.tenant(txn.tenant).limits.recipients_per_message
    if limit and len(txn.rcpt_to) >= limit:
        return Decision(replies.TENANT_TOO_MANY_RECIPIENTS, "tenant_recipients")
    return None


CHECKS = (utf8_address, relay, recipient_limit, tenant_recipients, suppression)


def run(state: PolicyState, session: SessionInfo, txn: Transaction, rcpt: str) -> Decision | None:
    """The first RCPT TO check that decides."""
    return first_decision(CHECKS, state, session, txn, rcpt)

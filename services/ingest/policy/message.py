"""Checks on the DATA block: smuggling, a usable From header, anti-spoofing on From.

Adding trace and missing headers and taking control headers is not a check; it happens
after these pass (``headers.complete``, ``headers.take_tags``).
"""

from __future__ import annotations

from services.ingest import replies, smuggling
from services.ingest.headers import Message, from_domains
from services.ingest.policy.base import (
    Decision,
    PolicyState,
    SessionInfo,
    Transaction,
    first_decision,
)


def bare_line_ends(
    state: PolicyState, session: SessionInfo, txn: Transaction, data: bytes, msg: Message
) -> Decision | None:
    """A bare CR or LF is refused unless configured to be normalised (RFC 5321 2.3.8)."""
    if state.config.smuggling == "refuse" and smuggling.has_bare_cr_or_lf(data):
        return Decision(replies.SMUGGLING, "smuggling")
    return None


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
        if not session.user.may_send_from(domain):
            return Decision(replies.from_not_allowed(domain), "from_domain")
    return None


CHECKS = (bare_line_ends, from_header, from_domain)


def run(
    state: PolicyState, session: SessionInfo, txn: Transaction, data: bytes, msg: Message
) -> Decision | None:
    """The first message check that decides."""
    return first_decision(CHECKS, state, session, txn, data, msg)

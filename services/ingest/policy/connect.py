"""Checks when a client connects, before the greeting (RFC 5321 3.1: 421 or 554 instead).

Order: shutting down, then AUTH brute-force block, then sessions per address.
"""

from __future__ import annotations

from services.ingest import replies
from services.ingest.policy.base import Decision, PolicyState, SessionInfo, first_decision


def shutting_down(state: PolicyState, session: SessionInfo) -> Decision | None:
    """A connection accepted just as the drain began gets 421 4.3.2."""
    return Decision(replies.SHUTTING_DOWN, "shutdown") if state.stopping else None


def auth_throttle(state: PolicyState, session: SessionInfo) -> Decision | None:
    """An address that failed AUTH too often recently is turned away until the window ends;
    never one in a trusted network (many apps share a host; the relay port needs no AUTH)."""
    if state.auth.ip_blocked(session.ip, state.trusted(session.ip)):
        return Decision(replies.AUTH_THROTTLED, "auth_throttle")
    return None


def sessions_per_ip(state: PolicyState, session: SessionInfo) -> Decision | None:
    """At most ``limits.max_sessions_per_ip`` concurrent sessions per address (this one counted)."""
    if state.sessions_per_ip[session.ip] > state.config.limits.max_sessions_per_ip:
        return Decision(replies.TOO_MANY_SESSIONS, "sessions_per_ip")
    return None


CHECKS = (shutting_down, auth_throttle, sessions_per_ip)


def run(state: PolicyState, session: SessionInfo) -> Decision | None:
    """The first connect check that decides."""
    return first_decision(CHECKS, state, session)

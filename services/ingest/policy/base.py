"""What every policy check sees and returns: the session, the transaction, the shared state.

This module owns those types and :func:`first_decision`. It holds no checks itself and does
no I/O: checks are pure functions of their arguments (plus the rate and failure tables they
update), so each can be tested without a socket.
"""

from __future__ import annotations

import collections
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from services.ingest.auth import User
from services.ingest.authlimit import AuthThrottle
from services.ingest.config import IngestConfig, ListenerConfig
from services.ingest.ratelimit import TokenBuckets
from services.ingest.replies import Reply
from shared.suppressions import SuppressionTable
from shared.wire.records import DEFAULT_TENANT

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Decision:
    """A check's verdict: the reply to send, and whether the recipient is accepted and dropped."""

    reply: Reply
    check: str
    drop: bool = False  # suppression "drop": answer 250 but leave the recipient out


@dataclass
class SessionInfo:
    """One SMTP session as the checks see it."""

    ip: str
    port: int
    listener: ListenerConfig
    helo: str = ""
    user: User | None = None
    tls: str | None = None  # "TLSv1.3" once TLS is up

    @property
    def authenticated(self) -> bool:
        """Whether the client completed AUTH."""
        return self.user is not None


@dataclass
class Transaction:
    """One mail transaction (MAIL FROM to the end of DATA)."""

    id: str
    mail_from: str
    rcpt_to: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # accepted at RCPT, suppressed ("drop")
    smtputf8: bool = False
    #: The sending tenant (from the AUTH credential); on the Submission and every event.
    tenant: str = DEFAULT_TENANT

    @property
    def sender_domain(self) -> str:
        """The envelope sender's domain, lower case ("" for the null reverse-path)."""
        return self.mail_from.rpartition("@")[2].lower() if "@" in self.mail_from else ""


@dataclass
class PolicyState:
    """The tables the checks consult, shared by every session of one ingest."""

    config: IngestConfig
    suppressions: SuppressionTable
    user_rates: TokenBuckets
    ip_rates: TokenBuckets
    auth: AuthThrottle
    networks: list[Network] = field(default_factory=list)
    sessions_per_ip: collections.Counter[str] = field(default_factory=collections.Counter)
    stopping: bool = False

    @classmethod
    def create(cls, config: IngestConfig, suppressions: SuppressionTable) -> PolicyState:
        """The state for ``config``, with empty rate and failure tables."""
        limits, rate = config.limits, config.rate
        return cls(
            config=config,
            suppressions=suppressions,
            user_rates=TokenBuckets(rate.per_user, rate.per_user_burst),
            ip_rates=TokenBuckets(rate.per_ip, rate.per_ip_burst),
            auth=AuthThrottle(
                limits.auth_failures, limits.auth_failures_per_user, limits.auth_failure_window
            ),
            networks=config.networks(),
        )

    def trusted(self, ip: str) -> bool:
        """Whether ``ip`` is in a trusted network."""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in net for net in self.networks)


#: A check: ``(state, session, ...) -> Decision | None``; the phase fixes the arguments.
Check = Callable[..., Decision | None]


def first_decision(
    checks: Sequence[Callable[..., Decision | None]], *args: object
) -> Decision | None:
    """Run ``checks`` in order with ``args``; the first that decides wins."""
    for check in checks:
        decision = check(*args)
        if decision is not None:
            return decision
    return None

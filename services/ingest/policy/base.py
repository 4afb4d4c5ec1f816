"""What every policy check sees and returns: the session, the transaction, the shared state.

This module owns those types and :func:`first_decision`. It holds no checks itself and does
no I/O: checks are pure functions of their arguments (plus the rate and failure tables they
update), so each can be tested without a socket.
"""

from __future__ import annotations

import collections
import ipaddress
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from services.ingest.auth import User
from services.ingest.authlimit import AuthThrottle
from services.ingest.config import IngestConfig, ListenerConfig
from services.ingest.ratelimit import TokenBuckets
from services.ingest.replies import Reply
from shared.credential_holds import HeldCredentials
from shared.suppressions import SuppressionTable
from shared.tenants import IMPLICIT_DEFAULT, TenantTable
from shared.wire.records import (
    DEFAULT_TENANT,
    RecipientDsn,
    SendingDomain,
    Tenant,
    TenantState,
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Decision:
    """A check's verdict: the reply to send, and whether the recipient is accepted and dropped."""

    reply: Reply
    check: str
    drop: bool = False  # suppression "drop": answer 250 but leave the recipient out
    #: For a limit: seconds until it frees up (the HTTP API's Retry-After); 0: unknown.
    retry_after: float = 0.0


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
    requiretls: bool = False  # RFC 8689 REQUIRETLS on MAIL FROM (``shared.tlsrequire``)
    #: The sending tenant (from the AUTH credential); on the Submission and every event.
    tenant: str = DEFAULT_TENANT
    #: The AUTH login or API key id it came with ("" when relayed without AUTH).
    credential: str = ""
    #: The DSN parameters (RFC 3461): MAIL FROM's RET and ENVID, and per recipient its
    #: NOTIFY and ORCPT (recipients that gave neither are not in ``dsn``).
    dsn_ret: str = ""
    dsn_envid: str = ""
    dsn: dict[str, RecipientDsn] = field(default_factory=dict)

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
    #: The tenants (``postline.tenants``, followed live): credentials, domains, state, limits.
    tenants: TenantTable = field(default_factory=TenantTable)
    #: Sessions authenticated per tenant in this process (``limits.sessions``).
    sessions_per_tenant: collections.Counter[str] = field(default_factory=collections.Counter)
    #: The held credentials (``postline.control``, followed live): refused at MAIL FROM.
    credential_holds: HeldCredentials = field(default_factory=HeldCredentials)
    stopping: bool = False
    #: The time checks compare against (a send-at's bounds); injected by tests.
    clock: Callable[[], float] = time.time

    @classmethod
    def create(
        cls,
        config: IngestConfig,
        suppressions: SuppressionTable,
        tenants: TenantTable | None = None,
        credential_holds: HeldCredentials | None = None,
    ) -> PolicyState:
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
            tenants=tenants if tenants is not None else TenantTable(),
            credential_holds=credential_holds or HeldCredentials(),
        )

    def tenant(self, tenant_id: str) -> Tenant:
        """The tenant record (the implicit default one when the id is unknown or removed)."""
        return self.tenants.get(tenant_id) or IMPLICIT_DEFAULT

    def tenant_for(self, session: SessionInfo, sender_domain: str) -> str:
        """Whose mail this is: the authenticated login's tenant; without AUTH (a trusted
        relay) the tenant owning the verified sender domain, else the default tenant."""
        if session.user is not None:
            return session.user.tenant
        owner = self.tenants.by_domain(sender_domain) if sender_domain else None
        if owner is not None and _verified(owner, sender_domain):
            return owner.id
        return DEFAULT_TENANT

    def may_send_from(self, user: User, domain: str) -> bool:
        """Whether ``user`` may use ``domain`` (MAIL FROM, From, Sender): a users-file user
        its listed domains; a tenant's login the tenant's *verified* domains (and only those
        the login is restricted to, if any). Read live: a domain verified a second ago counts."""
        domain = domain.lower().rstrip(".")
        if user.tenant == DEFAULT_TENANT:
            return user.may_send_from(domain)
        if user.domains and domain not in user.domains:
            return False
        return _verified(self.tenant(user.tenant), domain)

    def paused_domain(self, tenant_id: str, domain: str) -> SendingDomain | None:
        """``domain`` when it is a sending domain of ``tenant_id`` that may not send now
        (paused or disabled on its own, e.g. by the reputation stage), else ``None``."""
        name = domain.lower().rstrip(".")
        for entry in self.tenant(tenant_id).domains:
            if entry.name == name and entry.status.state is not TenantState.ACTIVE:
                return entry
        return None

    def start_tenant_session(self, tenant_id: str) -> bool:
        """Count an authenticated session of ``tenant_id``; ``False`` (nothing counted) past
        its ``limits.sessions``. Counted per ingest process: concurrent sessions are a
        property of connections, which each replica holds itself (state it in the docs)."""
        limit = self.tenant(tenant_id).limits.sessions
        if limit and self.sessions_per_tenant[tenant_id] >= limit:
            return False
        self.sessions_per_tenant[tenant_id] += 1
        return True

    def end_tenant_session(self, tenant_id: str) -> None:
        """An authenticated session of ``tenant_id`` ended."""
        self.sessions_per_tenant[tenant_id] -= 1
        if self.sessions_per_tenant[tenant_id] <= 0:
            del self.sessions_per_tenant[tenant_id]

    def trusted(self, ip: str) -> bool:
        """Whether ``ip`` is in a trusted network."""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in net for net in self.networks)


def _verified(tenant: Tenant, domain: str) -> bool:
    return any(d.name == domain and d.verified for d in tenant.domains)


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

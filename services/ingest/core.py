"""What every session of one ingest shares, and the one way a refusal is reported.

``server.py`` (the SMTP session) and ``handler.py`` (the per-command hooks) both use these;
neither imports the other's internals, so there is no import cycle between them. This module
does no I/O itself: events go through :class:`~services.ingest.handoff.EventSink`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from services.ingest import replies
from services.ingest.auth import User, Users
from services.ingest.budget import BodyBudget
from services.ingest.config import IngestConfig
from services.ingest.handoff import EventSink, Handoff
from services.ingest.metrics import IngestMetrics
from services.ingest.policy.base import Decision, PolicyState, SessionInfo, Transaction
from services.ingest.scanning.scanner import Scanned, Scanner
from shared.errors import LimiterUnavailable
from shared.limits import Limiter
from shared.tenant_limits import limit_key, message_rules
from shared.wire.records import Event, EventKind, new_id, now

STAGE = "ingest"


@dataclass
class IngestCore:
    """What every session of one ingest shares."""

    config: IngestConfig
    hostname: str
    policy: PolicyState
    users: Users
    handoff: Handoff
    events: EventSink
    metrics: IngestMetrics
    log: logging.Logger
    activity: Callable[[], AbstractAsyncContextManager[None]]
    sessions: set[Any] = field(default_factory=set)  # the open IngestSMTP sessions
    #: Counts tenants' messages against their limits (``[limits]``); ``None``: no limits.
    limiter: Limiter | None = None
    #: The content scanner (``[ingest.scanning]``); ``None``: no scanning.
    scanner: Scanner | None = None
    #: Message bytes held by all sessions (``limits.max_buffered_bytes``), made from config.
    budget: BodyBudget = field(init=False)

    def __post_init__(self) -> None:
        limit = int(self.config.limits.max_buffered_bytes)
        self.budget = BodyBudget(limit, self.metrics.buffered_bytes)

    async def authenticate(self, name: bytes, password: bytes) -> User | None:
        """The user for an AUTH: a tenant's login (``postline tenant credential add``) or a
        users-file user (the default tenant). One scrypt either way, so the time taken does
        not tell which table a name is in, nor whether it exists."""
        login = name.decode("utf-8", errors="replace")
        tenants = self.policy.tenants
        if tenants.by_credential(login) is None:
            return await self.users.verify(name, password)
        found = await tenants.verify_credential(login, password)
        if found is None:
            return None
        tenant, credential = found
        domains = frozenset(d.lower().rstrip(".") for d in credential.domains)
        return User(login, domains, tenant=tenant.id)

    async def tenant_limits(self, tenant_id: str) -> Decision | None:
        """One message of ``tenant_id`` against its cluster-wide rate and quotas
        (``shared.tenant_limits``); ``None`` when it may go. A refusal names the limit."""
        if self.limiter is None:
            return None
        rules = message_rules(self.policy.tenant(tenant_id).limits)
        if not rules:
            return None
        try:
            verdict = await self.limiter.acquire(limit_key(tenant_id), rules)
        except LimiterUnavailable:
            # limits.on_redis_failure = "closed": our failure, so a 4xx (the client retries).
            return Decision(replies.LIMITS_UNAVAILABLE, "limits_unavailable")
        if verdict.allowed:
            return None
        if verdict.kind == "quota":
            reject = self.config.quota_exhausted == "reject"
            reply = replies.quota_exhausted(verdict.rule, verdict.reset_at, reject)
        else:
            reply = replies.over_rate(verdict.rule, verdict.retry_after)
        return Decision(reply, f"tenant_{verdict.rule}", retry_after=verdict.retry_after)

    async def scan(self, info: SessionInfo, txn: Transaction, data: bytes) -> Scanned | None:
        """The content scanner's verdict on ``data`` under the tenant's mode; ``None`` when
        it is not scanned. A refusal's ``scanned`` event is emitted here with the
        ``rejected`` one (the caller's :meth:`reject`); otherwise the event goes with the
        message in its hand-off."""
        if self.scanner is None:
            return None
        mode = self.policy.tenant(txn.tenant).settings.scanning
        scanned = await self.scanner.scan(info, txn, data, mode)
        if scanned is not None and scanned.decision is not None:
            self.events.emit(scanned.event)
        return scanned

    def reject(
        self,
        info: SessionInfo,
        txn: Transaction | None,
        decision: Decision,
        recipient: str = "",
    ) -> None:
        """Count a refusal and report it as a ``rejected`` event naming the check."""
        self.metrics.messages.labels("rejected", decision.check).inc()
        self.metrics.tenants.count(txn.tenant if txn is not None else "", "rejected")
        self.events.emit(rejection_event(info, txn, decision, recipient))


def rejection_event(
    info: SessionInfo, txn: Transaction | None, decision: Decision, recipient: str = ""
) -> Event:
    """The ``rejected`` event for a check's decision."""
    return Event(
        kind=EventKind.REJECTED,
        message_id=txn.id if txn is not None else new_id(),
        at=now(),
        recipient=recipient,
        domain=recipient.rpartition("@")[2].lower() if recipient else "",
        sender=txn.mail_from if txn is not None else "",
        reply=decision.reply,
        tls=info.tls or "",
        check=decision.check,
        detail=f"client {info.ip} on listener {info.listener.name}",
        stage=STAGE,
        # Refused before MAIL FROM there is no transaction yet: the tenant is unknown ("").
        tenant=txn.tenant if txn is not None else "",
        credential=txn.credential if txn is not None else "",
    )

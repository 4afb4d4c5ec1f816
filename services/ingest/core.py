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

from services.ingest.auth import Users
from services.ingest.budget import BodyBudget
from services.ingest.config import IngestConfig
from services.ingest.handoff import EventSink, Handoff
from services.ingest.metrics import IngestMetrics
from services.ingest.policy.base import Decision, PolicyState, SessionInfo, Transaction
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
    #: Message bytes held by all sessions (``limits.max_buffered_bytes``), made from config.
    budget: BodyBudget = field(init=False)

    def __post_init__(self) -> None:
        limit = int(self.config.limits.max_buffered_bytes)
        self.budget = BodyBudget(limit, self.metrics.buffered_bytes)

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
    )

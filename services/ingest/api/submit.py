"""An API message through ingest's policy, the same checks and hand-off as SMTP's.

For each message, in order: the MAIL FROM checks (``policy/mail_from.py``: the tenant's and
the sending domain's state, the sender domain verified for the key's tenant, message rates),
the RCPT TO checks per recipient (``policy/rcpt_to.py``: recipient counts, the suppression
list), the DATA checks on the built message (``policy/message.py``: From and Sender domains,
header names, sizes, the send-at header), the size limit, and last the tenant's rate and
quotas (``IngestCore.tenant_limits``; last, so a message refused for its content does not
use up a unit). The first check that decides refuses the message, with the same ``rejected``
event as over SMTP. A recipient refused on its own (on the suppression list, with
``suppression = "refuse"``) is left out and named in the answer while the others are sent,
as SMTP answers 550 to its RCPT; a check on the recipient count refuses the whole message
(over SMTP the client would send the rest later; an API request is all or nothing).

Then :func:`accept.finish` and the hand-off: the Submissions and their events in one bus
publish, so a batch's accepted messages are durable together or not at all; 202 only after
the bus acknowledged (``Handoff``). This module does not speak HTTP (``routes.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from services.ingest import accept, headers, replies
from services.ingest.api import problems
from services.ingest.api.compose import Composed
from services.ingest.api.types import Accepted, RejectedRecipient
from services.ingest.auth import User
from services.ingest.config import ListenerConfig
from services.ingest.core import IngestCore
from services.ingest.policy import mail_from, message, rcpt_to
from services.ingest.policy.base import Decision, SessionInfo, Transaction
from shared.errors import BusError
from shared.wire.records import (
    DEFAULT_TENANT,
    ApiKey,
    ClientInfo,
    Event,
    Quarantined,
    Submission,
    new_id,
)

#: The name the API goes by where SMTP names a listener (events, ClientInfo, metrics).
LISTENER = "api"
#: The Received field's ``from`` name and ``with`` keyword for a message that came by HTTP.
HELO = "api"
VIA = "HTTP"
#: Checks that count recipients: a refusal refuses the whole API message.
_WHOLE_MESSAGE = frozenset({"recipient_limit", "tenant_recipients"})


@dataclass
class Prepared:
    """A message every check passed, ready for the hand-off."""

    txn: Transaction
    #: None: every recipient dropped (suppression "drop"); Quarantined: held by the scanner.
    submission: Submission | Quarantined | None
    events: list[Event]
    message_id: str  # its Message-ID field
    send_at: float
    size: int
    rejected: list[RejectedRecipient] = field(default_factory=list)

    def accepted(self) -> Accepted:
        """The answer once the bus holds it."""
        return Accepted(
            id=self.txn.id,
            message_id=self.message_id,
            send_at=datetime.fromtimestamp(self.send_at, UTC) if self.send_at else None,
            rejected=self.rejected,
        )


class Submitter:
    """Runs API messages through ingest's checks and hands them to the bus."""

    def __init__(self, core: IngestCore, listener: ListenerConfig) -> None:
        self.core = core
        self.listener = listener

    def session(self, remote: str, tenant_id: str, key: ApiKey) -> SessionInfo:
        """What the checks see of a request: a client authenticated as the key, for its
        tenant (whose *verified* domains it may send from, as a tenant's SMTP login)."""
        domains: frozenset[str] = frozenset()
        if tenant_id == DEFAULT_TENANT:
            # The default tenant's users are checked against their own domain lists; an
            # API key of a default tenant record has its verified domains as that list.
            record = self.core.policy.tenant(tenant_id)
            domains = frozenset(d.name for d in record.domains if d.verified)
        user = User(key.id, domains, tenant=tenant_id)
        return SessionInfo(ip=remote, port=0, listener=self.listener, helo=HELO, user=user)

    async def prepare(self, info: SessionInfo, composed: Composed) -> Prepared:
        """Run every check on one message; raises ``ApiProblem`` naming the refusal."""
        core = self.core
        txn = Transaction(id=new_id(), mail_from=composed.mail_from, smtputf8=composed.smtputf8)
        txn.credential = info.user.name if info.user else ""
        txn.tenant = core.policy.tenant_for(info, txn.sender_domain)
        self._refuse_on(info, txn, mail_from.run(core.policy, info, txn))
        rejected = self._recipients(info, txn, composed.recipients)
        if not txn.rcpt_to:
            raise problems.ApiProblem(
                problems.problem(
                    problems.NO_RECIPIENT, "every recipient was refused", rejected=rejected
                )
            )
        msg = headers.parse(composed.data)
        self._refuse_on(info, txn, message.run(core.policy, info, txn, composed.data, msg))
        if len(composed.data) > core.config.limits.max_message_size:
            self._refuse_on(info, txn, Decision(replies.TOO_BIG, "size"))
        self._refuse_on(info, txn, await core.tenant_limits(txn.tenant))
        return await self._finish(info, txn, msg, composed, rejected)

    def _recipients(
        self, info: SessionInfo, txn: Transaction, recipients: list[str]
    ) -> list[RejectedRecipient]:
        rejected: list[RejectedRecipient] = []
        for rcpt in recipients:
            decision = rcpt_to.run(self.core.policy, info, txn, rcpt)
            if decision is not None and decision.check in _WHOLE_MESSAGE:
                self._refuse_on(info, txn, decision)
            if decision is not None and not decision.drop:
                self.core.reject(info, txn, decision, rcpt)
                rejected.append(
                    RejectedRecipient(address=rcpt, reply=str(decision.reply), check=decision.check)
                )
                continue
            txn.rcpt_to.append(rcpt)
            if decision is not None:
                txn.dropped.append(rcpt)
        return rejected

    def _refuse_on(self, info: SessionInfo, txn: Transaction, decision: Decision | None) -> None:
        """Refuse the message when a check decided: its rejected event, then the problem."""
        if decision is None:
            return
        self.core.reject(info, txn, decision)
        raise problems.ApiProblem(problems.from_decision(decision))

    async def _finish(
        self,
        info: SessionInfo,
        txn: Transaction,
        msg: headers.Message,
        composed: Composed,
        rejected: list[RejectedRecipient],
    ) -> Prepared:
        core = self.core
        at = core.policy.clock()
        key_id = info.user.name if info.user else ""
        trace = headers.Trace(
            helo=HELO,
            ip=info.ip,
            hostname=core.hostname,
            message_id=txn.id,
            at=at,
            auth_user=key_id,
            smtputf8=txn.smtputf8,
            via=VIA,
        )
        finished = accept.finish(
            msg,
            trace,
            core.config.limits.max_tags,
            tags=composed.tags,
            send_at=composed.send_at,
        )
        scanned = await core.scan(info, txn, finished.data) if accept.kept(txn) else None
        if scanned is not None:
            self._refuse_on(info, txn, scanned.decision)
            finished = replace(finished, data=scanned.data)
        client = ClientInfo(
            ip=info.ip, port=0, helo=HELO, auth_user=key_id, tls=None, listener=LISTENER
        )
        ids = headers.parse(finished.data).get("message-id")
        tenant_tls = core.policy.tenant(txn.tenant).settings.require_tls
        message, events = accept.screened(
            accept.submission(txn, client, finished, at, tenant_require_tls=tenant_tls),
            accept.events(
                txn,
                finished.tags,
                at,
                detail=f"HTTP API, key {key_id}",
                subject=finished.subject,
            ),
            scanned,
        )
        return Prepared(
            txn=txn,
            submission=message,
            events=events,
            message_id=ids[0] if ids else "",
            send_at=finished.send_at,
            size=len(finished.data),
            rejected=rejected,
        )

    async def hand_off(self, prepared: list[Prepared]) -> None:
        """Publish every prepared message in one atomic publish, then count them as
        accepted; raises ``BusError`` (nothing was recorded) when the bus did not answer."""
        core = self.core
        try:
            await core.handoff.submit_many([(p.submission, p.events) for p in prepared])
        except BusError:
            core.metrics.messages.labels("failed", "bus").inc(len(prepared))
            raise
        for p in prepared:
            core.metrics.messages.labels("accepted", "").inc()
            core.metrics.tenants.count(p.txn.tenant, "accepted")
            core.metrics.message_bytes.observe(p.size)
            core.metrics.recipients.observe(len(p.txn.rcpt_to))
            core.log.info(
                "accepted",
                extra={
                    "message_id": p.txn.id,
                    "recipients": len(p.txn.rcpt_to),
                    "listener": LISTENER,
                },
            )

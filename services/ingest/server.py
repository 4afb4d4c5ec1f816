"""The SMTP session: aiosmtpd's state machine with Postline's connect, AUTH, reply and drain rules.

aiosmtpd parses commands, PIPELINING, STARTTLS, SIZE and the DATA block (ending only on
``<CRLF>.<CRLF>``). This subclass adds what aiosmtpd does not do: connect checks before the
greeting, enhanced status codes on aiosmtpd's own replies, scrypt verification off the event
loop with per-address failure throttling, implicit TLS, the RFC 5321 DATA timeout, a 421 on
timeouts, and the drain. Each session holds an activity token so a shutdown waits for it.
BDAT comes from ``chunking.py``; the policy hooks per command live in ``handler.py``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiosmtpd.smtp import AuthResult, LoginPassword, Session

from services.ingest import replies
from services.ingest.auth import Users
from services.ingest.chunking import ChunkingSMTP
from services.ingest.config import IngestConfig, ListenerConfig
from services.ingest.handler import Handler, rejection_event
from services.ingest.handoff import EventSink, Handoff
from services.ingest.metrics import IngestMetrics
from services.ingest.policy import connect
from services.ingest.policy.base import Decision, PolicyState, SessionInfo, Transaction
from services.ingest.replies import Reply


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
    sessions: set[IngestSMTP] = field(default_factory=set)


def tls_version(transport: asyncio.BaseTransport | None) -> str | None:
    """The TLS protocol version of a transport ("TLSv1.3"), ``None`` when plaintext."""
    obj = transport.get_extra_info("ssl_object") if transport is not None else None
    return obj.version() if isinstance(obj, ssl.SSLObject | ssl.SSLSocket) else None


def _command_names(cls: type) -> list[str]:
    """The SMTP command and AUTH mechanism method names of ``cls`` (and its bases)."""
    return sorted({n for c in cls.__mro__ for n in vars(c) if n.startswith(("smtp_", "auth_"))})


class _Session(Session):
    """aiosmtpd's session without the deprecation warning it logs on every AUTH."""

    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        # aiosmtpd itself sets this legacy field after AUTH; we use auth_data (the User).
        self._login_data = value


class IngestSMTP(ChunkingSMTP):
    """One SMTP connection on one listener."""

    _DIR_NAMES: ClassVar[tuple[str, ...]] = ()  # set below, once the class exists

    def __init__(
        self, core: IngestCore, listener: ListenerConfig, tls: ssl.SSLContext | None
    ) -> None:
        limits = core.config.limits
        super().__init__(
            Handler(core),
            data_size_limit=int(limits.max_message_size),
            enable_SMTPUTF8=True,
            hostname=core.hostname,
            ident="Postline ESMTP",
            tls_context=None if listener.mode == "implicit_tls" else tls,
            timeout=float(limits.command_timeout),
            auth_required=listener.mode != "relay",
            auth_require_tls=True,
            loop=asyncio.get_running_loop(),
        )
        if listener.mode == "implicit_tls":
            # RFC 8314: the connection is TLS from the first byte, so AUTH is safe at once.
            self._auth_require_tls = False
        # aiosmtpd keeps these per-command limits in a class-level dict that every EHLO
        # grows; give each session its own.
        self.command_size_limits = collections.defaultdict(lambda: self.command_size_limit)
        self.data_timeout = float(limits.data_timeout)
        self.core = core
        self.listener = listener
        self.info = SessionInfo(ip="", port=0, listener=listener)
        self.txn: Transaction | None = None
        self.draining = False
        self._end_result: str | None = None

    def __dir__(self) -> list[str]:
        # aiosmtpd builds its command and AUTH tables per connection with dir() and
        # inspect.getmembers(), which evaluates every attribute: half the CPU of a short
        # session. Only the smtp_*/auth_* names matter to it; list those, computed once.
        return list(self._DIR_NAMES)

    # -- session lifecycle ---------------------------------------------------------------

    async def _handle_client(self) -> None:
        core, metrics = self.core, self.core.metrics
        peer = self.session.peer if self.session else None
        self.info.ip, self.info.port = (str(peer[0]), int(peer[1])) if peer else ("", 0)
        self.info.tls = tls_version(self.transport)
        if self.info.tls:
            metrics.tls.labels(self.info.tls).inc()
        async with core.activity():
            core.sessions.add(self)
            core.policy.sessions_per_ip[self.info.ip] += 1
            metrics.sessions_active.labels(self.listener.name).inc()
            result = "lost"
            try:
                decision = connect.run(core.policy, self.info)
                if decision is not None:
                    result = "refused"
                    self.reject(decision)
                    self.abort(decision.reply)
                    return
                await super()._handle_client()
            finally:
                if self.draining or core.policy.stopping:
                    result = "drained" if result == "lost" else result
                metrics.sessions.labels(self.listener.name, self._result(result)).inc()
                metrics.sessions_active.labels(self.listener.name).dec()
                core.policy.sessions_per_ip[self.info.ip] -= 1
                if core.policy.sessions_per_ip[self.info.ip] <= 0:
                    del core.policy.sessions_per_ip[self.info.ip]
                core.sessions.discard(self)

    def _result(self, result: str) -> str:
        return self._end_result or result

    def _create_session(self) -> Session:
        return _Session(self.loop)

    def _set_post_data_state(self) -> None:
        super()._set_post_data_state()
        self.txn = None

    async def smtp_QUIT(self, arg: str) -> None:
        """QUIT ends the session normally."""
        self._end_result = "ok"
        await super().smtp_QUIT(arg)

    async def smtp_DATA(self, arg: str) -> None:
        """DATA, with the RFC 5321 4.5.3.2.6 data block timeout instead of the command one."""
        self._reset_timeout(self.data_timeout)
        await super().smtp_DATA(arg)
        self._reset_timeout()

    async def after_message(self) -> None:
        """A draining session ends once its transaction is answered."""
        if self.draining:
            self.abort(replies.SHUTTING_DOWN)

    def on_too_big(self) -> None:
        """BDAT went over the size limit: report it like aiosmtpd's DATA limit."""
        self.reject(Decision(replies.TOO_BIG, "size"))

    async def smtp_RSET(self, arg: str) -> None:
        """RSET; a draining session ends here, its transaction having been abandoned."""
        await super().smtp_RSET(arg)
        if self.draining:
            self.abort(replies.SHUTTING_DOWN)

    def _timeout_cb(self) -> None:
        # RFC 5321 4.5.3.2 timeouts; 3.8: say why before closing (421) instead of a bare close.
        self._end_result = "timeout"
        self.abort(replies.TIMEOUT)

    def drain(self) -> None:
        """Shutdown: close an idle session now; let one in a transaction finish it first."""
        self.draining = True
        if self.txn is None:
            self.abort(replies.SHUTTING_DOWN)

    def abort(self, reply: Reply) -> None:
        """Send ``reply`` (a 421) and close the connection."""
        if self.transport is None or self.transport.is_closing():
            return
        self._writer.write(f"{reply}\r\n".encode())
        self.transport.close()

    # -- replies and events ----------------------------------------------------------------

    async def push(self, status: Any) -> None:
        """Send a reply; aiosmtpd's own replies get enhanced status codes first."""
        if isinstance(status, str):
            if status.startswith("552 Error"):
                self.reject(Decision(replies.TOO_BIG, "size"))
            status = replies.translate(status)
        await super().push(status)

    def reject(
        self, decision: Decision, recipient: str = "", txn: Transaction | None = None
    ) -> None:
        """Count a rejection and report it as an event naming the check."""
        self.core.metrics.messages.labels("rejected", decision.check).inc()
        event = rejection_event(self.info, txn or self.txn, decision, recipient)
        self.core.events.emit(event)

    def handle_tls_up(self) -> None:
        """STARTTLS completed: note the version for the Received header and metrics."""
        self.info.tls = tls_version(self.transport)
        if self.info.tls:
            self.core.metrics.tls.labels(self.info.tls).inc()

    # -- AUTH (RFC 4954) ------------------------------------------------------------------

    def _authenticate(self, mechanism: str, auth_data: Any) -> AuthResult:
        # aiosmtpd verifies synchronously; hand the credentials back to auth_* below, which
        # verify them in a thread (scrypt) and apply the failure throttle.
        return AuthResult(success=False, handled=False, auth_data=auth_data)

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        """AUTH PLAIN (RFC 4616)."""
        return await self._verify(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        """AUTH LOGIN (draft-murchison-sasl-login)."""
        return await self._verify(await super().auth_LOGIN(_, args))

    async def _verify(self, parsed: AuthResult) -> AuthResult:
        if not isinstance(parsed.auth_data, LoginPassword):
            return parsed  # malformed or aborted exchange, already answered
        policy = self.core.policy
        if policy.auth_failures.blocked(self.info.ip):
            return self._throttle()
        user = await self.core.users.verify(parsed.auth_data.login, parsed.auth_data.password)
        if user is not None:
            self.info.user = user
            return AuthResult(success=True, auth_data=user, message=str(replies.AUTH_OK))
        self.core.metrics.auth_failures.inc()
        if policy.auth_failures.fail(self.info.ip):
            return self._throttle()
        return AuthResult(success=False, handled=False, message=str(replies.AUTH_INVALID))

    def _throttle(self) -> AuthResult:
        self._end_result = "throttled"
        self.reject(Decision(replies.AUTH_THROTTLED, "auth_throttle"))
        self.abort(replies.AUTH_THROTTLED)
        return AuthResult(success=False, handled=True)


IngestSMTP._DIR_NAMES = tuple(_command_names(IngestSMTP))

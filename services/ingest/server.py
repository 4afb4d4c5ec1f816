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
import re
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session, syntax

from services.ingest import replies
from services.ingest.budget import NO_ROOM
from services.ingest.chunking import ChunkingSMTP
from services.ingest.config import ListenerConfig
from services.ingest.core import IngestCore
from services.ingest.handler import NULL_REVERSE_PATH, Handler
from services.ingest.policy import connect
from services.ingest.policy.base import Decision, SessionInfo, Transaction
from services.ingest.replies import Reply
from services.ingest.state import IngestEnvelope, IngestSession, tls_version
from shared import dsnparams, tlsrequire
from shared.address import AddressError, parse_path

#: RFC 5321 2.3.8 / 4.1.1: a command line is printable text; NUL, other C0 controls, DEL and
#: C1 controls (how a bare CR or an escape sequence arrives) have no place in any command.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: How long a closing session keeps reading (and discarding) what the client still sends,
#: so our last reply is not destroyed by a TCP reset (closing a socket with unread input
#: resets it, RFC 1122 4.2.2.13); the client normally closes first on reading the 421.
LINGER = 1.0
#: Refusals that are a normal outcome for a well-behaved client, not a client error, and so
#: do not count towards ``limits.max_errors``: a suppressed recipient of a bulk send, and
#: RFC 5321 4.5.3.1.10's "452, send the rest in another transaction".
_NOT_ERRORS = frozenset(str(r).encode() for r in (replies.SUPPRESSED, replies.TOO_MANY_RECIPIENTS))


def take_requiretls(arg: str | None) -> tuple[bool, str | None]:
    """Whether a MAIL argument (``FROM:<path> params``) has the REQUIRETLS parameter, and the
    argument without it. Only the parameters after the path count (a quoted local part may
    hold the word); ``REQUIRETLS=...`` is left for aiosmtpd to refuse (it takes no value),
    as is an argument whose path does not parse (aiosmtpd's reply says so)."""
    if arg is None:
        return False, arg
    _, colon, rest = arg.partition(":")
    try:
        params = parse_path(rest).params if colon else ""
    except AddressError:
        return False, arg
    words = params.split()
    kept = [w for w in words if w.upper() != tlsrequire.KEYWORD]
    if len(kept) == len(words):
        return False, arg
    # The parameters are the argument's tail (parse_path strips only blanks around them).
    head = arg.rstrip()[: len(arg.rstrip()) - len(params)].rstrip()
    return True, " ".join([head, *kept])


def _command_names(cls: type) -> list[str]:
    """The SMTP command and AUTH mechanism method names of ``cls`` (and its bases)."""
    return sorted({n for c in cls.__mro__ for n in vars(c) if n.startswith(("smtp_", "auth_"))})


class IngestSMTP(ChunkingSMTP):
    """One SMTP connection on one listener."""

    _DIR_NAMES: ClassVar[tuple[str, ...]] = ()  # set below, once the class exists

    def __init__(
        self, core: IngestCore, listener: ListenerConfig, tls: ssl.SSLContext | None
    ) -> None:
        limits = core.config.limits
        self.info = SessionInfo(ip="", port=0, listener=listener)
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
        self._smtp_methods = {
            name: self._guarded(method) for name, method in self._smtp_methods.items()
        }
        self.data_timeout = float(limits.data_timeout)
        self.budget = core.budget
        self.core = core
        self.listener = listener
        self.draining = False
        self.errors = 0
        self._closing = False
        self._held: list[bytes] | None = None
        self._end_result: str | None = None
        #: The DSN parameters (RFC 3461) the command being read may carry: MAIL's or RCPT's.
        self._dsn_keywords: frozenset[str] = frozenset()

    def __dir__(self) -> list[str]:
        # aiosmtpd builds its command and AUTH tables per connection with dir() and
        # inspect.getmembers(), which evaluates every attribute: half the CPU of a short
        # session. Only the smtp_*/auth_* names matter to it; list those, computed once.
        return list(self._DIR_NAMES)

    @property
    def txn(self) -> Transaction | None:
        """The transaction in progress (started by an accepted MAIL), if any."""
        envelope = self.envelope
        return envelope.txn if isinstance(envelope, IngestEnvelope) else None

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
                if self.info.user is not None:
                    core.policy.end_tenant_session(self.info.user.tenant)
                core.sessions.discard(self)

    def _result(self, result: str) -> str:
        return self._end_result or result

    def _create_session(self) -> Session:
        # One SessionInfo for the connection: STARTTLS makes aiosmtpd create a new Session.
        return IngestSession(self.loop, self.info)

    def _create_envelope(self) -> Envelope:
        return IngestEnvelope()

    def _guarded(self, method: Callable[[str | None], Awaitable[None]]) -> Callable[..., Any]:
        """``method`` behind the checks every command line passes first."""

        async def guarded(arg: str | None) -> None:
            if self._closing:
                return  # a closing session reads and discards what the client still sends
            if arg and _CONTROL.search(arg):
                # RFC 5321 4.1.1 / 4.1.2 allow no control character in a command's argument:
                # 501 is "syntax error in parameters or arguments", 5.5.2 (RFC 3463) a
                # command that cannot be interpreted. A NUL or stray CR here is how header
                # and command injection through the envelope starts.
                await self.push(str(replies.CONTROL_CHARACTER))
                return
            await method(arg)

        return guarded

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd's parser is RFC 5322's (email._header_value_parser): it lets NUL, spaces
        # and routing characters through. Ours is RFC 5321's Path grammar (address.py).
        envelope = self.envelope
        if isinstance(envelope, IngestEnvelope):
            envelope.dsn_params = []
        if not arg:
            return "", ""
        try:
            path = parse_path(arg)
        except AddressError:
            return None, None  # aiosmtpd answers "553 5.1.3", translated to 501 5.1.3
        params = path.params
        if isinstance(envelope, IngestEnvelope) and self.session and self.session.extended_smtp:
            # aiosmtpd upper-cases the parameters and answers 555 to those it does not know;
            # the DSN ones (RFC 3461) are taken out here, as sent, for the handler's hooks.
            envelope.dsn_params, params = dsnparams.split_params(params, self._dsn_keywords)
        return path.mailbox or NULL_REVERSE_PATH, params

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        """MAIL FROM, with RFC 3461's RET and ENVID, and RFC 8689's REQUIRETLS: noted on the
        envelope and taken out (aiosmtpd answers 555 to parameters it does not know);
        ``handler.handle_MAIL`` puts it on the transaction, whose checks refuse it outside
        TLS (``policy/mail_from.py``)."""
        self._dsn_keywords = dsnparams.MAIL_KEYWORDS
        requiretls = False
        if self.session is not None and self.session.extended_smtp:
            # After HELO there are no parameters at all: aiosmtpd refuses the line (501).
            requiretls, arg = take_requiretls(arg)
        envelope = self.envelope
        if isinstance(envelope, IngestEnvelope):
            envelope.requiretls = requiretls
        await super().smtp_MAIL(arg)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        """RCPT TO, with RFC 3461's NOTIFY and ORCPT."""
        self._dsn_keywords = dsnparams.RCPT_KEYWORDS
        await super().smtp_RCPT(arg)

    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        if self._closing:
            # A DATA block that ends after a shutdown's 421 is not handed off: the client was
            # told it failed and will send it again.
            return str(replies.SHUTTING_DOWN)
        return await super()._call_handler_hook(command, *args)

    async def smtp_QUIT(self, arg: str) -> None:
        """QUIT ends the session normally."""
        self._end_result = "ok"
        await super().smtp_QUIT(arg)

    async def smtp_EHLO(self, hostname: str) -> None:
        """EHLO, its multi-line reply written at once.

        aiosmtpd writes each line separately, and with TCP_NODELAY each becomes its own
        segment; clients that read one segment as the whole reply (nmap's smtp-open-relay)
        then misread it. RFC 5321 4.2.1 does not require it, but it costs nothing.
        """
        self._held = []
        try:
            await super().smtp_EHLO(hostname)
        finally:
            held, self._held = self._held, None
            if held and not self._closing:
                self._writer.write(b"".join(held))
                await self._writer.drain()

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
        """DATA or BDAT went over the size limit."""
        self.reject(Decision(replies.TOO_BIG, "size"))

    def on_no_room(self) -> None:
        """A message was refused for the process's memory budget (``452 4.3.1``)."""
        self.reject(Decision(NO_ROOM, "memory"))

    async def smtp_RSET(self, arg: str) -> None:
        """RSET; a draining session ends here, its transaction having been abandoned."""
        await super().smtp_RSET(arg)
        if self.draining:
            self.abort(replies.SHUTTING_DOWN)

    def _timeout_cb(self) -> None:
        # RFC 5321 4.5.3.2 timeouts; 3.8: say why before closing (421) instead of a bare close.
        self._end_result = self._end_result or "timeout"
        self.abort(replies.TIMEOUT)

    def drain(self) -> None:
        """Shutdown: close an idle session now; let one in a transaction finish it first."""
        self.draining = True
        if self.txn is None:
            self.abort(replies.SHUTTING_DOWN)

    def abort(self, reply: Reply) -> None:
        """Send ``reply`` (a 421) and close the connection (RFC 5321 3.8).

        The reply goes out before a FIN (half-close where the transport can, not TLS), and
        what the client still sends (the rest of a DATA block, pipelined commands) is read
        and discarded for :data:`LINGER` seconds at most: closing a socket with unread
        input sends a reset, which can destroy the 421 before the client reads it.
        """
        transport = self.transport
        if not isinstance(transport, asyncio.WriteTransport) or self._closing:
            return
        if transport.is_closing():
            return
        self._closing = True
        self._writer.write(f"{reply}\r\n".encode())
        try:
            if transport.can_write_eof():
                transport.write_eof()
        except OSError:  # the client is already gone
            transport.close()
            return
        self.loop.call_later(LINGER, transport.close)

    # -- replies and events ----------------------------------------------------------------

    async def push(self, status: Any) -> None:
        """Send a reply; aiosmtpd's own replies get enhanced status codes first; a closing
        session sends nothing more; past ``limits.max_errors`` refusals the session ends."""
        if self._closing:
            return
        if isinstance(status, str):
            if status.startswith("552 Error"):
                self.reject(Decision(replies.TOO_BIG, "size"))
            status = replies.translate(status)
        line = status.encode() if isinstance(status, str) else bytes(status)
        if self._held is not None:
            self._held.append(line + b"\r\n")
            return
        await super().push(line)
        if line[:1] in (b"4", b"5") and line[:3] != b"421":
            self._count_error(line)

    def _count_error(self, line: bytes) -> None:
        # Postfix's smtpd_hard_error_limit: a client that keeps sending what we refuse
        # (pipelined refused RCPTs, syntax errors) is cut off instead of costing us work.
        if line in _NOT_ERRORS:
            return
        self.errors += 1
        if self.errors >= self.core.config.limits.max_errors:
            self._end_result = "errors"
            self.reject(Decision(replies.TOO_MANY_ERRORS, "error_limit"))
            self.abort(replies.TOO_MANY_ERRORS)

    def reject(
        self, decision: Decision, recipient: str = "", txn: Transaction | None = None
    ) -> None:
        """Count a refusal and report it as an event naming the check."""
        self.core.reject(self.info, txn or self.txn, decision, recipient)

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
        policy, ip = self.core.policy, self.info.ip
        login = parsed.auth_data.login.decode("utf-8", errors="replace")
        trusted = policy.trusted(ip)
        # Checked before the password: a locked credential learns nothing from a guess.
        if policy.auth.blocked(ip, login, trusted):
            return self._throttle()
        user = await self.core.authenticate(parsed.auth_data.login, parsed.auth_data.password)
        if user is not None:
            policy.auth.succeeded(ip, login)
            if not policy.start_tenant_session(user.tenant):
                self.reject(Decision(replies.TENANT_SESSIONS, "tenant_sessions"))
                return AuthResult(
                    success=False, handled=False, message=str(replies.TENANT_SESSIONS)
                )
            self.info.user = user
            return AuthResult(success=True, auth_data=user, message=str(replies.AUTH_OK))
        self.core.metrics.auth_failures.inc()
        policy.auth.failed(ip, login, trusted)
        if policy.auth.blocked(ip, login, trusted):
            return self._throttle()
        return AuthResult(success=False, handled=False, message=str(replies.AUTH_INVALID))

    def _throttle(self) -> AuthResult:
        self._end_result = "throttled"
        self.reject(Decision(replies.AUTH_THROTTLED, "auth_throttle"))
        self.abort(replies.AUTH_THROTTLED)
        return AuthResult(success=False, handled=True)


IngestSMTP._DIR_NAMES = tuple(_command_names(IngestSMTP))

"""Remote MX hosts for tests: a recording aiosmtpd sink with scriptable replies.

    async with SmtpSink() as sink:                 # 127.0.0.1, an ephemeral port
        ... deliver to ("127.0.0.1", sink.port) ...
        await sink.wait_for(1)                     # poll with a deadline, never sleep
        sink.messages[0].rcpt_tos, sink.messages[0].data

    sink = SmtpSink(host="127.0.0.2", port=shared_port)   # several MX hosts on one port

Scripting (each reply is used once, in order; when a script runs out the sink accepts):

- ``sink.script_rcpt("a@x.test", "421 4.7.0 Try again later", "550 5.1.1 No such user")``
- ``sink.script_mail("421 4.7.0 Rate limited")``
- ``sink.script_data("451 4.3.0 Local error")`` or ``sink.script_data(DROP)``: close the
  connection after the message was received but before the final reply (the client cannot
  know whether it was delivered: RFC 5321 6.1 duplicate window).
- ``SmtpSink(max_recipients=2)``: the third and later RCPT of a transaction get
  ``452 4.5.3 Too many recipients`` (RFC 5321 4.5.3.1.10).
- ``SmtpSink(tls_context=server_tls_context())`` offers STARTTLS; without one it offers none.
- ``SmtpSink(tls_context=..., requiretls=True)`` offers REQUIRETLS (RFC 8689) after
  STARTTLS and accepts the MAIL parameter; ``Received.requiretls`` says whether it came.
- ``SmtpSink(tls_context=..., users={"login": "password"})`` requires AUTH PLAIN/LOGIN over
  TLS (a smarthost); ``sink.authenticated`` lists the logins that succeeded.
- ``sink.data_delay = 0.5``: wait that long before the final DATA reply (``sink.in_data``
  counts transactions waiting for it), to stop or kill a deliverer mid-transaction.
- ``SmtpSink(smtputf8=True)`` offers SMTPUTF8 (RFC 6531; by default it does not);
  ``SmtpSink(eightbitmime=False)`` does not offer 8BITMIME (RFC 6152; aiosmtpd always does).
  Each accepted message keeps its MAIL parameters (``mail_options``: ``BODY=8BITMIME``).
- ``SmtpSink(dsn=True)`` offers DSN (RFC 3461) and takes its parameters; ``sink.dsn_params``
  lists, per MAIL and RCPT, the verb, the address and the DSN parameters as sent.
- ``sink.refuse()`` stops listening (connections are refused); :func:`free_port` finds a port.

``sink.messages`` holds what was accepted (250 after DATA; each with the client's address in
``peer`` and its EHLO name in ``helo``), ``sink.dropped`` what was received
and then dropped, ``sink.connections`` counts TCP connections (to assert reuse), ``sink.active`` /
``sink.max_active`` the connections open now / at most at once (to assert limits).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

#: Script this as a DATA reply to drop the connection instead of answering.
DROP = "DROP"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
_DSN_KEYWORDS = frozenset({"RET", "ENVID", "NOTIFY", "ORCPT"})


@dataclass(frozen=True)
class Received:
    """One message the sink accepted (or received and then dropped)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    tls: bool
    peer: tuple[str, int]
    connection: int  # which TCP connection (1-based) carried it
    helo: str = ""  # the name the client gave in EHLO/HELO (a source address's EHLO name)
    mail_options: tuple[str, ...] = ()  # the MAIL FROM parameters (BODY=8BITMIME, SMTPUTF8)
    requiretls: bool = False  # MAIL FROM carried REQUIRETLS (RFC 8689)


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, lines: list[str]
    ) -> list[str]:
        session.host_name = hostname  # what aiosmtpd does itself when there is no hook
        if not self.sink.eightbitmime:
            lines = [line for line in lines if line[4:].upper() != "8BITMIME"]
        extra = ["250-DSN"] if self.sink.dsn else []
        if self.sink.requiretls and session.ssl is not None:
            extra.append("250-REQUIRETLS")  # RFC 8689: offered over TLS only
        return [*lines[:-1], *extra, lines[-1]]

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.sink.dsn_params.append(("MAIL", address, getattr(server, "dsn_seen", ())))
        reply = _pop(self.sink._mail)
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.sink.dsn_params.append(("RCPT", address, getattr(server, "dsn_seen", ())))
        reply = _pop(self.sink._rcpt.get(address.lower(), deque()))
        if reply is not None:
            return reply
        limit = self.sink.max_recipients
        if limit is not None and len(envelope.rcpt_tos) >= limit:
            return TOO_MANY_RECIPIENTS
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        received = Received(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=bytes(envelope.original_content or b""),
            tls=session.ssl is not None,
            peer=tuple(session.peer),  # type: ignore[arg-type]
            connection=getattr(server, "_sink_connection", 0),
            helo=session.host_name or "",
            mail_options=tuple(envelope.mail_options),
            requiretls=getattr(envelope, "requiretls", False),
        )
        self.sink.in_data += 1
        try:
            if self.sink.data_delay:
                await asyncio.sleep(self.sink.data_delay)  # a slow server, for drain tests
        finally:
            self.sink.in_data -= 1
        reply = _pop(self.sink._data)
        if reply == DROP:
            self.sink.dropped.append(received)
            if isinstance(server.transport, asyncio.Transport):
                server.transport.abort()  # RST, no final reply: the client cannot know
            return "250 2.0.0 never sent"
        if reply is not None:
            return reply
        self.sink.messages.append(received)
        return "250 2.0.0 OK queued"


def _pop(replies: deque[str]) -> str | None:
    return replies.popleft() if replies else None


class _CountingSMTP(SMTP):
    """aiosmtpd's SMTP, counting connections open at once."""

    def __init__(self, sink: SmtpSink, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sink = sink

    async def smtp_MAIL(self, arg: str | None) -> None:
        # aiosmtpd answers 555 to a parameter it does not know: take REQUIRETLS out first.
        words = (arg or "").split()
        kept = [w for w in words[1:] if w.upper() != "REQUIRETLS"]
        found = (
            self._sink.requiretls and self._tls_protocol is not None and len(kept) < len(words) - 1
        )
        if found:
            arg = " ".join(words[:1] + kept)
        await super().smtp_MAIL(arg)
        if found and self.envelope is not None and self.envelope.mail_from:
            self.envelope.requiretls = True  # type: ignore[attr-defined]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._sink.active += 1
        self._sink.max_active = max(self._sink.max_active, self._sink.active)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._sink.active -= 1
        super().connection_lost(error)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd answers 555 to parameters it does not know: a sink offering DSN takes
        # its parameters out first, as sent, for ``sink.dsn_params``.
        address, params = super()._getaddr(arg)
        self.dsn_seen: tuple[str, ...] = ()
        if self._sink.dsn and params:
            words = params.split()
            self.dsn_seen = tuple(w for w in words if w.partition("=")[0].upper() in _DSN_KEYWORDS)
            params = " ".join(w for w in words if w not in self.dsn_seen)
        return address, params


class SmtpSink:
    """A recording SMTP server on ``host`` (127.0.0.1 by default) and ``port`` (0 = ephemeral)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_recipients: int | None = None,
        tls_context: ssl.SSLContext | None = None,
        hostname: str = "sink.test",
        users: dict[str, str] | None = None,
        smtputf8: bool = False,
        eightbitmime: bool = True,
        dsn: bool = False,
        requiretls: bool = False,
    ) -> None:
        self.host = host
        self.dsn = dsn  # offer DSN (RFC 3461) and record its parameters
        self.requiretls = requiretls  # offer REQUIRETLS (RFC 8689) after STARTTLS
        self.dsn_params: list[tuple[str, str, tuple[str, ...]]] = []
        self.smtputf8 = smtputf8  # offer SMTPUTF8 (RFC 6531)
        self.eightbitmime = eightbitmime  # offer 8BITMIME (RFC 6152)
        self.port = port
        self.max_recipients = max_recipients
        self.tls_context = tls_context
        self.hostname = hostname
        self.users = users  # AUTH PLAIN/LOGIN required (over TLS) when given
        self.authenticated: list[str] = []  # logins that authenticated, in order
        self.messages: list[Received] = []
        self.dropped: list[Received] = []
        self.connections = 0
        self.active = 0  # connections open now
        self.max_active = 0  # the most connections open at once (reset it freely)
        self.data_delay = 0.0  # seconds to wait before answering DATA
        self.in_data = 0  # transactions waiting for their DATA reply right now
        self._mail: deque[str] = deque()
        self._data: deque[str] = deque()
        self._rcpt: dict[str, deque[str]] = {}
        self._server: asyncio.Server | None = None

    def script_mail(self, *replies: str) -> None:
        """Answer the next MAIL commands with ``replies``, one each."""
        self._mail.extend(replies)

    def script_rcpt(self, address: str, *replies: str) -> None:
        """Answer the next RCPT commands for ``address`` with ``replies``, one each."""
        self._rcpt.setdefault(address.lower(), deque()).extend(replies)

    def script_data(self, *replies: str) -> None:
        """Answer the next DATA transactions with ``replies`` (or :data:`DROP`), one each."""
        self._data.extend(replies)

    def recipients(self) -> list[str]:
        """Every recipient of every accepted message, in order."""
        return [rcpt for message in self.messages for rcpt in message.rcpt_tos]

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until at least ``count`` messages were accepted (polls; fails at the deadline)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.host}:{self.port} got {len(self.messages)} of {count}")
            await asyncio.sleep(0.01)
        return self.messages

    def _protocol(self) -> SMTP:
        self.connections += 1
        protocol = _CountingSMTP(
            self,
            _Handler(self),
            hostname=self.hostname,
            tls_context=self.tls_context,
            require_starttls=False,
            authenticator=self._authenticate if self.users is not None else None,
            auth_required=self.users is not None,
            auth_require_tls=True,
            enable_SMTPUTF8=self.smtputf8,
        )
        protocol._sink_connection = self.connections  # type: ignore[attr-defined]
        return protocol

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and self.users is not None:
            login, password = data.login.decode(), data.password.decode()
            if self.users.get(login) == password:
                self.authenticated.append(login)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    async def start(self) -> None:
        """Listen; afterwards ``port`` is the bound port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def refuse(self) -> None:
        """Stop listening: new connections are refused."""
        if self._server is not None:
            self._server.close()
            self._server = None

    async def __aenter__(self) -> SmtpSink:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.refuse()


def free_port(hosts: tuple[str, ...] = ("127.0.0.1",)) -> int:
    """A TCP port that is free on every address in ``hosts`` right now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port: int = probe.getsockname()[1]
        if all(_bindable(host, port) for host in hosts):
            return port
    raise OSError(f"no common free port on {hosts}")


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def server_tls_context(hostname: str = "sink.test") -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for ``hostname``."""
    from cryptography import x509  # noqa: PLC0415 - only TLS tests need it
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    san: list[Any] = [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .sign(key, hashes.SHA256())
    )
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
    return context

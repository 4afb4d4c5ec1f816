"""One SMTP client connection to one MX host, used for one or more messages.

Owns: connecting (bound to a source address when a pool says so), the greeting, EHLO,
STARTTLS under the host's :class:`~services.deliverer.transport.policy.HostPolicy`
(opportunistic; required: never plaintext; verified against the CA store with the MX name;
checked after the handshake, e.g. against DANE TLSA records; an unenforced policy's failure
reported and the mail sent over the best connection available), and what the connection
achieved (:attr:`Session.tls_outcome`), AUTH for smarthosts, and
transactions with per-recipient results, split when the server limits recipients (452, RFC
5321 4.5.3.1.10). Timeouts per command follow RFC 5321 4.5.3.2 (``config.Timeouts``).
Does not choose hosts or retry (``pool.py``), and does not classify beyond ``outcome.classify``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from dataclasses import dataclass

import aiosmtplib

from services.deliverer.config import Timeouts
from services.deliverer.envelope import (
    AddressError,
    NeedsSmtpUtf8,
    encode_path,
    header_needs_utf8,
    needs_utf8,
)
from services.deliverer.outcome import (
    BAD_RECIPIENT_SYNTAX,
    BAD_SENDER_SYNTAX,
    EIGHTBIT_UNAVAILABLE,
    SMTPUTF8_UNAVAILABLE,
    Classified,
    Outcome,
    classify,
    parse_reply,
)
from services.deliverer.transport.handshake import (
    certificate_result,
    client_tls_context,
    handshake_words,
)
from services.deliverer.transport.policy import (
    HostPolicy,
    ResultType,
    Security,
    TlsCheckFailed,
    TlsOutcome,
)
from shared import dsnparams
from shared.tlsrequire import KEYWORD, NONE
from shared.wire.records import Delivery, SmtpReply

#: RFC 5321 4.5.3.1.10: 452 to RCPT means "too many recipients, send the rest later".
TOO_MANY_RECIPIENTS = 452
#: RFC 5321 3.8: after a 421 the server closes the channel; the connection is unusable.
SERVICE_CLOSING = 421


@dataclass(frozen=True)
class Target:
    """Where to connect: the MX host's name (for TLS SNI and events) and one address."""

    host: str
    address: str
    port: int

    @property
    def relay(self) -> str:
        """``host[address]:port``, as Postfix's ``relay=`` names where mail went."""
        return f"{self.host}[{self.address}]:{self.port}"


@dataclass(frozen=True)
class SessionOptions:
    """How to talk to a target (from the destination's policy or smarthost route)."""

    ehlo_name: str
    timeouts: Timeouts
    tls: str = "opportunistic"  # "opportunistic" | "required" | "implicit"
    verify_certs: bool = False
    source_address: str | None = None
    username: str = ""
    password: str = ""
    #: What this host's connection must achieve (DANE, MTA-STS); ``None``: ``tls`` and
    #: ``verify_certs`` decide (:meth:`effective_policy`).
    host_policy: HostPolicy | None = None
    #: Shared contexts (None: built per connection): verifying (trust store, MX name) and
    #: not (opportunistic TLS; DANE, which authenticates with the TLSA records instead).
    verified_context: ssl.SSLContext | None = None
    unverified_context: ssl.SSLContext | None = None

    def effective_policy(self) -> HostPolicy:
        """The host policy, or the one the configuration's ``tls``/``verify_certs`` mean."""
        if self.host_policy is not None:
            return self.host_policy
        if self.tls == "opportunistic":
            # A failed verification is reported and the mail goes over unverified TLS
            # (opportunistic security, RFC 7435), never refused.
            return HostPolicy(
                Security.OPPORTUNISTIC, verify_webpki=self.verify_certs, enforce=False
            )
        return HostPolicy(Security.REQUIRED, require_tls=True, verify_webpki=self.verify_certs)


class Session:
    """An open SMTP connection; :meth:`send` delivers one Delivery over it."""

    def __init__(
        self,
        smtp: aiosmtplib.SMTP,
        target: Target,
        timeouts: Timeouts,
        outcome: TlsOutcome | None = None,
    ) -> None:
        self._smtp = smtp
        self._timeouts = timeouts
        self._closing: Classified | None = None  # the 421 that ended the session
        self.target = target
        self.source = ""  # the local address bound ("" = the OS's choice): events say it
        self.messages = 0
        self.broken = False
        ssl_object = smtp.get_transport_info("ssl_object")
        self.tls = ssl_object.version() if ssl_object is not None else ""
        cipher = ssl_object.cipher() if ssl_object is not None else None
        self.cipher = cipher[0] if cipher else ""  # the suite negotiated (the mail log)
        #: What the connection achieved under its host's policy (a ``tls_session`` event).
        self.tls_outcome = outcome or TlsOutcome(
            Security.OPPORTUNISTIC if self.tls else Security.NONE
        )
        self.tls_outcome.version = self.tls
        self.tls_outcome.cipher = self.cipher
        self.tls_outcome.mx = target.host
        self.tls_outcome.mx_address = target.address
        #: The message TLS requirement it was opened under (``transport/requirement.py``):
        #: what decides which later messages may reuse it.
        self.need = NONE

    @property
    def relay(self) -> str:
        """Where this session's mail goes: ``host[address]:port``."""
        return self.target.relay

    @classmethod
    async def open(cls, target: Target, options: SessionOptions) -> Session:
        """Connect, read the greeting, EHLO, STARTTLS (and AUTH when configured).

        Raises :class:`TlsCheckFailed` when the host's enforced policy is not met (no
        STARTTLS where TLS is required, a certificate that fails verification or the
        policy's check): never a fallback to plaintext then. Raises the aiosmtplib / OS
        errors of a failed connection otherwise.
        """
        policy = options.effective_policy()
        outcome = TlsOutcome(policy.security, policy.report, source=options.source_address or "")
        if policy.noted is not None:
            outcome.failure, outcome.detail = policy.noted.result_type, policy.noted.detail
        try:
            session = await cls._open(target, options, policy, policy)
        except TlsCheckFailed as failed:
            outcome.failure, outcome.detail = failed.result_type, failed.detail
            if policy.enforce:
                outcome.mx, outcome.mx_address = target.host, target.address
                failed.outcome = outcome
                raise
            # Not enforced (MTA-STS "testing", opportunistic with verify_certs): reported,
            # and the mail goes over the best connection to be had: unverified TLS, else
            # (RFC 7435) cleartext, on a fresh connection.
            session = await cls._open_lenient(target, options)
        except ssl.SSLError as exc:
            if not policy.require_tls:
                # RFC 7435 (opportunistic security): a failed handshake falls back to
                # cleartext, on a fresh connection, as Postfix does with
                # smtp_tls_security_level=may.
                session = await cls._open(target, options, policy, _CLEARTEXT)
            elif policy.enforce:
                refusal = TlsCheckFailed(ResultType.VALIDATION_FAILURE, handshake_words(exc))
                outcome.failure, outcome.detail = refusal.result_type, refusal.detail
                outcome.mx, outcome.mx_address = target.host, target.address
                refusal.outcome = outcome
                raise refusal from None
            else:
                outcome.failure = ResultType.VALIDATION_FAILURE
                outcome.detail = handshake_words(exc)
                session = await cls._open(target, options, policy, _CLEARTEXT)
        else:
            outcome.verified = bool(session.tls) and (
                policy.verify_webpki or policy.check is not None
            )
        if not session.tls and outcome.security is Security.OPPORTUNISTIC:
            outcome.security = Security.NONE
        outcome.version, outcome.cipher = session.tls, session.cipher
        outcome.mx, outcome.mx_address = target.host, target.address
        session.tls_outcome = outcome
        return session

    @classmethod
    async def _open_lenient(cls, target: Target, options: SessionOptions) -> Session:
        try:
            return await cls._open(target, options, _UNVERIFIED, _UNVERIFIED)
        except ssl.SSLError:
            return await cls._open(target, options, _UNVERIFIED, _CLEARTEXT)

    @classmethod
    async def _open(
        cls, target: Target, options: SessionOptions, policy: HostPolicy, attempt: HostPolicy
    ) -> Session:
        """One connection. ``policy`` says what is required; ``attempt`` how this try goes
        (the same, or unverified / cleartext for a fallback)."""
        t = options.timeouts
        context = _context(options, attempt)
        if options.tls == "implicit":
            smtp = aiosmtplib.SMTP(
                hostname=target.host,
                port=target.port,
                local_hostname=options.ehlo_name,
                timeout=t.greeting,
                use_tls=True,
                tls_context=context,
                start_tls=False,
                source_address=(options.source_address, 0) if options.source_address else None,
            )
            await asyncio.wait_for(smtp.connect(), t.connect + t.greeting)
        else:
            sock = await _connect_socket(target, options.source_address, t.connect)
            smtp = aiosmtplib.SMTP(
                sock=sock, local_hostname=options.ehlo_name, timeout=t.greeting, start_tls=False
            )
            await smtp.connect()  # reads the 220 greeting (4.5.3.2.1: 5 minutes)
        try:
            await smtp.ehlo(timeout=t.ehlo)
            if options.tls != "implicit":
                await _starttls(smtp, target, options, context, policy=policy, attempt=attempt)
            if attempt.check is not None:
                ssl_object = smtp.get_transport_info("ssl_object")
                if ssl_object is not None:
                    attempt.check(ssl_object, target.host)
            if options.username:
                await smtp.login(options.username, options.password, timeout=t.ehlo)
        except BaseException:
            smtp.close()
            raise
        session = cls(smtp, target, t)
        session.source = options.source_address or ""
        return session

    async def send(self, delivery: Delivery, max_recipients: int) -> dict[str, Classified]:
        """One or more transactions for ``delivery``; a result for every recipient.

        A network failure marks the session broken and defers every recipient without a
        final result; no exception escapes for SMTP-level outcomes.
        """
        results: dict[str, Classified] = {}
        remaining = list(dict.fromkeys(delivery.rcpt_to))
        try:
            while remaining and not self.broken:
                chunk, rest = remaining[:max_recipients], remaining[max_recipients:]
                carried = await self._transaction(delivery, chunk, results)
                remaining = carried + rest
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self.broken = True
            failure = classify(exc)
            if failure.outcome is not Outcome.DEFERRED or failure.reply.code < 400:
                failure = Classified(Outcome.DEFERRED, failure.reply)
            for rcpt in remaining:
                results.setdefault(rcpt, failure)
        for rcpt in remaining:  # left over after a 421 closed the session
            results.setdefault(rcpt, self._closing or classify(ConnectionResetError("closed")))
        self.messages += 1
        return results

    async def _transaction(
        self, delivery: Delivery, chunk: list[str], results: dict[str, Classified]
    ) -> list[str]:
        """MAIL, RCPT each, DATA; records final results; returns recipients to carry over."""
        refused = self._unsupported(delivery)
        if refused is not None:  # never sent in a form the server did not agree to
            for rcpt in chunk:
                results[rcpt] = Classified(Outcome.BOUNCED, refused)
            return []
        utf8 = self._utf8(delivery, chunk)
        if not await self._mail(delivery, chunk, utf8, results):
            return []
        accepted, carried = await self._recipients(delivery, chunk, utf8, results)
        if self._closing is not None:  # 421: every open recipient of the chunk waits
            for open_rcpt in chunk:
                results.setdefault(open_rcpt, self._closing)
            return []
        if not accepted:
            await self._smtp.rset(timeout=self._timeouts.mail)
            return []
        try:
            reply = await self._smtp.data(delivery.data, timeout=self._timeouts.data_done)
            outcome = classify(parse_reply(reply.code, reply.message))
        except aiosmtplib.SMTPDataError as exc:
            self._note_reply(exc)
            outcome = classify(exc)
        for rcpt in accepted:
            results[rcpt] = outcome
        return carried

    async def _mail(
        self, delivery: Delivery, chunk: list[str], utf8: bool, results: dict[str, Classified]
    ) -> bool:
        """MAIL FROM; ``False`` (with a result for each of ``chunk``) when it failed."""
        try:
            sender = encode_path(delivery.mail_from, utf8=utf8)
            await self._command(b"MAIL", b"FROM:" + sender, *self._mail_options(delivery, utf8))
        except (AddressError, NeedsSmtpUtf8) as exc:
            failure = _unsendable(exc, BAD_SENDER_SYNTAX)
        except aiosmtplib.SMTPResponseException as exc:
            self._note_reply(exc)
            failure = classify(exc)
        else:
            return True
        for rcpt in chunk:
            results[rcpt] = failure
        return False

    async def _recipients(
        self, delivery: Delivery, chunk: list[str], utf8: bool, results: dict[str, Classified]
    ) -> tuple[list[str], list[str]]:
        """RCPT TO each (with its NOTIFY and ORCPT when the server offers DSN); the accepted
        ones and those to carry to the next transaction."""
        accepted: list[str] = []
        carried: list[str] = []
        for rcpt in chunk:
            try:
                path = encode_path(rcpt, utf8=utf8)
                params = dsnparams.wire_rcpt_params(delivery.dsn.get(rcpt)) if self.dsn else []
                await self._command(b"RCPT", b"TO:" + path, *params, timeout=self._timeouts.rcpt)
                accepted.append(rcpt)
            except (AddressError, NeedsSmtpUtf8) as exc:
                results[rcpt] = _unsendable(exc, BAD_RECIPIENT_SYNTAX)
            except aiosmtplib.SMTPResponseException as exc:
                self._note_reply(exc)
                if exc.code == TOO_MANY_RECIPIENTS and accepted:
                    carried.append(rcpt)  # send it in the next transaction
                else:
                    results[rcpt] = classify(exc)
            if self._closing is not None:
                break
        return accepted, carried

    def _note_reply(self, exc: aiosmtplib.SMTPResponseException) -> None:
        if exc.code == SERVICE_CLOSING:
            self.broken = True
            self._closing = classify(exc)

    async def _command(self, verb: bytes, *args: bytes, timeout: float | None = None) -> None:
        """MAIL or RCPT with our own path bytes (aiosmtplib's ``mail``/``rcpt`` re-parse the
        address as an RFC 5322 one and cannot send quoted local parts or UTF-8 correctly).
        Raises ``SMTPResponseException`` on a reply that is not a success (RFC 5321 4.3.2:
        250 for MAIL, 250 or 251 for RCPT)."""
        response = await self._smtp.execute_command(
            verb, *args, timeout=self._timeouts.mail if timeout is None else timeout
        )
        if response.code not in (250, 251):
            raise aiosmtplib.SMTPResponseException(response.code, response.message)

    def _utf8(self, delivery: Delivery, chunk: list[str]) -> bool:
        """Whether this transaction goes with SMTPUTF8 (RFC 6531 3.4): the message or an
        address needs it, and the server offered it."""
        if not self._smtp.supports_extension("smtputf8"):
            return False
        return delivery.smtputf8 or any(map(needs_utf8, [delivery.mail_from, *chunk]))

    def _unsupported(self, delivery: Delivery) -> SmtpReply | None:
        """The bounce for a message this server cannot take as it is: internationalised
        headers without SMTPUTF8 (RFC 6531 3.5 lets the client bounce it: 5.6.7), or an
        8-bit body without 8BITMIME (RFC 6152 3: convert or bounce; the signer already
        converted what it could, so what is still 8-bit bounces: 5.6.3). Addresses are
        checked per recipient when they are put on the wire (``envelope.encode_path``)."""
        smtputf8 = self._smtp.supports_extension("smtputf8")
        if not smtputf8 and header_needs_utf8(delivery.smtputf8, delivery.data):
            return SMTPUTF8_UNAVAILABLE
        if delivery.body_8bit and not self._smtp.supports_extension("8bitmime"):
            return EIGHTBIT_UNAVAILABLE
        return None

    @property
    def dsn(self) -> bool:
        """Whether the server offers DSN (RFC 3461): then the sender's DSN parameters go
        with each transaction and the server owes the later notices (5.2.1)."""
        return self._smtp.supports_extension("dsn")

    def _mail_options(self, delivery: Delivery, utf8: bool) -> list[bytes]:
        options = []
        if delivery.body_8bit and self._smtp.supports_extension("8bitmime"):
            options.append(b"BODY=8BITMIME")
        if utf8:
            options.append(b"SMTPUTF8")
        if delivery.requiretls and self.offers_requiretls:
            options.append(KEYWORD.encode())  # RFC 8689 4.2.1 (5): the next hop carries it on
        if self.dsn:
            options += dsnparams.wire_mail_params(delivery.dsn_ret, delivery.dsn_envid)
        return options

    async def close(self) -> None:
        """QUIT politely (RFC 5321 4.1.1.10) and close; never raises."""
        try:
            if not self.broken and self._smtp.is_connected:
                await self._smtp.quit(timeout=5)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            pass
        finally:
            self._smtp.close()
            self.broken = True

    @property
    def offers_requiretls(self) -> bool:
        """Whether the host offered REQUIRETLS (RFC 8689) in its EHLO reply after TLS."""
        return bool(self.tls) and self._smtp.supports_extension(KEYWORD.lower())

    @property
    def usable(self) -> bool:
        """Whether another message may be sent on this connection."""
        return not self.broken and self._smtp.is_connected


def _unsendable(exc: Exception, bad_syntax: SmtpReply) -> Classified:
    """The permanent result of an address that cannot be put on the wire."""
    reply = SMTPUTF8_UNAVAILABLE if isinstance(exc, NeedsSmtpUtf8) else bad_syntax
    return Classified(Outcome.BOUNCED, reply)


async def _connect_socket(target: Target, source: str | None, timeout: float) -> socket.socket:
    family = socket.AF_INET6 if ":" in target.address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        if source:
            sock.bind((source, 0))  # the source-address pool decides our IP (reputation)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(sock, (target.address, target.port)), timeout)
    except BaseException:
        sock.close()
        raise
    return sock


async def _starttls(
    smtp: aiosmtplib.SMTP,
    target: Target,
    options: SessionOptions,
    context: ssl.SSLContext,
    *,
    policy: HostPolicy,
    attempt: HostPolicy,
) -> None:
    offered = smtp.supports_extension("starttls")
    if not offered or attempt is _CLEARTEXT:
        if policy.require_tls and attempt is not _CLEARTEXT:
            # Never fall back to plaintext when policy requires TLS: defer instead.
            await _quit_quietly(smtp)
            raise TlsCheckFailed(
                ResultType.STARTTLS_NOT_SUPPORTED, f"{target.host} did not offer STARTTLS"
            )
        return
    try:
        await smtp.starttls(
            server_hostname=target.host, tls_context=context, timeout=options.timeouts.ehlo
        )
    except ssl.SSLCertVerificationError as exc:
        raise TlsCheckFailed(certificate_result(exc), handshake_words(exc)) from None
    await smtp.ehlo(timeout=options.timeouts.ehlo)  # RFC 3207 4.2: forget pre-TLS EHLO


async def _quit_quietly(smtp: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
        await smtp.quit(timeout=5)


#: The fallbacks of an unenforced policy: TLS without verification, then cleartext.
_UNVERIFIED = HostPolicy(Security.OPPORTUNISTIC, enforce=False)
_CLEARTEXT = HostPolicy(Security.NONE, enforce=False)


def _context(options: SessionOptions, attempt: HostPolicy) -> ssl.SSLContext:
    """The handshake's context: verifying (CA store, MX name) or not."""
    if attempt.verify_webpki:
        return options.verified_context or client_tls_context(True)
    return options.unverified_context or client_tls_context(False)

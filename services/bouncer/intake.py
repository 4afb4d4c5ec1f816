"""SMTP intake for the bounce domains: DSNs, bounces, ARF reports and mailto unsubscribes.

Owns the aiosmtpd handler and its listener. A recipient is accepted only at one of our bounce
domains and only when it carries a valid token: a VERP return path
(``shared.wire.tokens.parse_verp``) or the unsubscribe mailto
(``<unsubscribe_local>+<token>@<bounce domain>``); anything else is ``550 5.1.1``. Our bounce
domains are ``bouncer.bounce_domain`` and the return-path host of every *verified* tenant
sending domain (``bounces.D`` or its ``bounce_domain``, a CNAME to ours, so its MX is this
listener), looked up in the live tenant table: the signer puts a verified domain's return
paths there so SPF aligns with From for DMARC (RFC 7489 3.1.2). An unverified or removed
domain's host is refused like any other. The host never vouches for a bounce on its own: the
token's HMAC still decides whether it is ours, so forged bounces cost the sender a rejection
and never touch a customer's recipients. Once the token verifies, the host names the report's
tenant: only that tenant's verified domains send with return paths there, so a DSN or ARF
report at ``bounces.D`` is about its mail (the token names only message and recipient). At
``bouncer.bounce_domain``, or a host several tenants share, the tenant stays unknown (``""``)
and ``outcome.py`` suppresses globally. A message is answered ``250`` only after its Events
and Suppressions are durable on the bus, else ``451 4.3.0`` (our failures are never 5xx:
the reporting MTA retries). Parsing is ``parse.py``, what to publish ``outcome.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from services.bouncer.config import BouncerConfig
from services.bouncer.metrics import BouncerMetrics
from services.bouncer.outcome import Outcomes
from services.bouncer.parse import parse_message
from services.bouncer.report import ReportKind
from shared.bus.base import Bus
from shared.errors import BusError, ForgedToken, ListenError
from shared.tenants import TenantTable
from shared.wire.records import SmtpReply
from shared.wire.tokens import UnsubscribeToken, VerpToken, parse_unsubscribe_token, parse_verp
from shared.wire.topics import OutRecord

RCPT_OK = SmtpReply(code=250, enhanced="2.1.5", text="Recipient ok")
ACCEPTED = SmtpReply(code=250, enhanced="2.0.0", text="Report accepted")
NO_SUCH_USER = SmtpReply(code=550, enhanced="5.1.1", text="No such user here")
BUS_DOWN = SmtpReply(code=451, enhanced="4.3.0", text="Temporary failure, try again later")
NO_RECIPIENTS = SmtpReply(code=554, enhanced="5.5.1", text="No valid recipients")

Target = VerpToken | UnsubscribeToken


def reply_line(reply: SmtpReply) -> str:
    """An aiosmtpd handler's return value."""
    return str(reply)


class BounceHandler:
    """The aiosmtpd handler: token checks at RCPT, parse and publish at DATA."""

    def __init__(
        self,
        *,
        config: BouncerConfig,
        secret: bytes,
        outcomes: Outcomes,
        bus: Bus,
        publish_timeout: float,
        metrics: BouncerMetrics,
        log: logging.Logger,
        activity: Callable[[], AbstractAsyncContextManager[None]],
        tenants: TenantTable | None = None,
    ) -> None:
        self._config = config
        # Not ``tenants or ...``: a table still empty at construction is falsy (``__len__``).
        self._tenants = TenantTable(log) if tenants is None else tenants
        self._secret = secret
        self._outcomes = outcomes
        self._bus = bus
        self._timeout = publish_timeout
        self._metrics = metrics
        self._log = log
        self._activity = activity

    def is_bounce_domain(self, domain: str) -> bool:
        """Whether ``domain`` is ours: the configured bounce domain or the return-path host
        of a verified tenant domain (as of now: a domain removed or unverified is not)."""
        host = domain.lower().rstrip(".")
        if host == self._config.bounce_domain.lower():
            return True
        return self._tenants.by_return_path(host) is not None

    def tenant_of(self, address: str) -> str:
        """The tenant a report to ``address`` is about: the one whose verified domains use
        its host as return path; ``""`` (unknown) at our own bounce domain."""
        host = address.strip("<> ").rpartition("@")[2].lower().rstrip(".")
        if host == self._config.bounce_domain.lower():
            return ""
        return self._tenants.return_path_tenant(host)

    def resolve(self, address: str) -> Target:
        """The verified token an address at a bounce domain carries; raises ForgedToken."""
        local, _, domain = address.strip("<> ").rpartition("@")
        if not self.is_bounce_domain(domain):
            raise ForgedToken(f"not a bounce domain: {address!r}")
        prefix, plus, token = local.partition("+")
        if plus and prefix.lower() == self._config.unsubscribe_local.lower():
            return parse_unsubscribe_token(self._secret, token)
        if plus and prefix.lower() == self._config.verp_local.lower():
            return parse_verp(address.strip("<> "), self._secret)
        raise ForgedToken(f"no token in {address!r}")

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """RCPT TO: only addresses with a valid token (RFC 5321 3.3: 550 for the rest)."""
        try:
            self.resolve(address)
        except ForgedToken as exc:
            self._metrics.rejected.labels("forged").inc()
            self._log.info("forged bounce recipient", extra={"rcpt": address, "error": str(exc)})
            return reply_line(NO_SUCH_USER)
        envelope.rcpt_tos.append(address)
        return reply_line(RCPT_OK)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Parse the report, publish what it means, then answer 250 (or 451)."""
        async with self._activity():
            raw = envelope.original_content or envelope.content or b""
            if isinstance(raw, str):
                raw = raw.encode("utf-8", errors="surrogateescape")
            records = self.records_for(envelope.rcpt_tos, raw, time.time())
            if records is None:
                return reply_line(NO_RECIPIENTS)
            try:
                await self._bus.publish(records, timeout=self._timeout)
            except (BusError, TimeoutError) as exc:
                self._log.warning("bus refused report", extra={"error": str(exc)})
                return reply_line(BUS_DOWN)
            return reply_line(ACCEPTED)

    def records_for(self, rcpts: list[str], raw: bytes, at: float) -> list[OutRecord] | None:
        """What one message to ``rcpts`` means; ``None`` when no recipient verifies."""
        targets: list[tuple[Target, str]] = []
        for rcpt in rcpts:
            try:
                targets.append((self.resolve(rcpt), self.tenant_of(rcpt)))
            except ForgedToken:
                continue  # verified at RCPT; a secret rotated in between
        if not targets:
            return None
        wanted = any(isinstance(t, VerpToken) for t, _ in targets)
        report = parse_message(raw) if wanted else None
        records: list[OutRecord] = []
        for target, tenant in targets:
            if isinstance(target, UnsubscribeToken):
                records += self._outcomes.for_unsubscribe(target, at, via="smtp", tenant=tenant)
            elif report is not None:
                found = self._outcomes.for_report(report, target, at, tenant=tenant)
                if not found and report.kind is not ReportKind.OTHER:
                    self._metrics.rejected.labels("unattributable").inc()
                records += found
        return records


async def start_intake(handler: BounceHandler, config: BouncerConfig) -> asyncio.Server:
    """Bind the bounce-domain listener (``loop.create_server``, so port 0 works in tests).

    Raises ``ListenError`` naming ``bouncer.listen_port`` when the address cannot be bound.
    """
    loop = asyncio.get_running_loop()

    def factory() -> Any:
        return SMTP(
            handler,
            hostname=config.bounce_domain,
            data_size_limit=config.max_report_size,
            timeout=float(config.smtp_timeout),
            enable_SMTPUTF8=True,
        )

    try:
        return await loop.create_server(factory, config.listen_host, config.listen_port)
    except OSError as exc:  # in use, not a local address, privileged: one line, no traceback
        reason = exc.strerror or str(exc)
        raise ListenError(
            "bouncer.listen_port", config.listen_host, config.listen_port, reason
        ) from exc

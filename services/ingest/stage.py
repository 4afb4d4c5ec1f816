"""The ingest stage: runs its listeners (its spec, ``STAGE``, is in ``main.py``).

``create`` reads the ``[ingest]`` section, loads TLS files, users and the suppression table,
and binds the listeners (so a bad certificate or a busy port fails the start clearly).
``run`` declares readiness, waits for the stop request and drains: stop accepting, close
idle sessions with 421 4.3.2, let transactions in flight finish within the grace period,
then answer 421 4.3.2 to what remains.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from contextlib import suppress

from services.ingest import listeners, replies
from services.ingest.api import listener as api_listener
from services.ingest.auth import Users, read_users
from services.ingest.config import IngestConfig, load
from services.ingest.core import IngestCore
from services.ingest.handoff import EventSink, Handoff
from services.ingest.metrics import IngestMetrics
from services.ingest.policy.base import PolicyState
from services.ingest.scanning.scanner import Scanner
from services.ingest.tls import TlsFiles
from shared.config import Config
from shared.control import follow_actions
from shared.credential_holds import HeldCredentials
from shared.limits import open_limiter
from shared.runtime.stage import StageContext
from shared.runtime.tenantsensor import tenant_sensor
from shared.suppressions import SuppressionTable
from shared.tenants import TenantTable
from shared.wire.records import ControlAction, ControlVerb
from shared.wire.topics import CONTROL, QUARANTINE, SUPPRESSIONS, TENANTS

#: Share of runtime.drain_timeout sessions may use; the rest answers 421 and flushes events.
DRAIN_SHARE = 0.8


class IngestStage:
    """A running ingest: its listeners and the state its sessions share."""

    def __init__(self, ctx: StageContext, config: IngestConfig) -> None:
        source = ctx.config.source
        self.config = config
        self.tls = TlsFiles(config.tls, source, ctx.log) if config.tls.cert else None
        self.users = Users(config.users_file)
        self.suppressions = SuppressionTable.for_config(ctx.config)
        self.tenants = TenantTable(ctx.log)
        self.holds = HeldCredentials(ctx.log)
        timeout = float(ctx.config.core.bus.publish_timeout)
        metrics = IngestMetrics(ctx.registry, tenant_sensor(ctx))
        self.core = IngestCore(
            config=config,
            hostname=config.hostname or socket.getfqdn(),
            policy=PolicyState.create(config, self.suppressions, self.tenants, self.holds),
            users=self.users,
            handoff=Handoff(ctx.bus, timeout, metrics),
            events=EventSink(
                ctx.bus, timeout, ctx.log, metrics, config.limits.rejection_event_queue
            ),
            metrics=metrics,
            log=ctx.log,
            activity=ctx.activity,
            limiter=open_limiter(ctx.config.core.limits, ctx.registry),
            scanner=Scanner(config.scanning, metrics, ctx.log) if config.scanning.url else None,
        )
        self.listeners: list[listeners.Listener] = []
        #: The HTTP sending API's listener (``[ingest.api] listen``), apart from the
        #: process port: a public endpoint, bound where the operator says.
        self.api: api_listener.Api | None = None
        if config.api.listen:
            self.api = api_listener.Api(self.core, config.api, ctx.config.core.limits)
        self._tasks: list[asyncio.Task[None]] = []
        ctx.reload_hooks.append(self.reload)

    def apply(self, action: ControlAction) -> None:
        """An operator's action from ``postline.control`` (``postline auth unblock``)."""
        if action.verb is ControlVerb.AUTH_UNBLOCK:
            self.core.policy.auth.unblock(action.target)

    def reload(self) -> None:
        """SIGHUP: re-read the certificate and the users file."""
        if self.tls is not None:
            self.tls.reload()
        self.users.reload()

    async def start(self, ctx: StageContext) -> None:
        """Load the suppression, tenant and held-credential tables, follow them, and bind
        the listeners."""
        # The tables ingest follows exist before it reads them (Kafka: created when missing,
        # with their declared settings, as `postline topics create` would).
        await ctx.bus.ensure_topics([SUPPRESSIONS.name, TENANTS.name, CONTROL.name])
        if self.core.scanner is not None:
            await ctx.bus.ensure_topics([QUARANTINE.name])  # where the scanner holds mail
        await self.suppressions.load(ctx.bus)
        await self.tenants.load(ctx.bus)
        await self.holds.load(ctx.bus)
        self._tasks.append(
            ctx.spawn(self.holds.follow(ctx.bus, ctx.stopping, ctx.log), name="credential-holds")
        )
        self._tasks.append(
            ctx.spawn(self.suppressions.follow(ctx.bus, ctx.stopping, ctx.log), name="suppressions")
        )
        self._tasks.append(
            ctx.spawn(self.tenants.follow(ctx.bus, ctx.stopping, ctx.log), name="tenants")
        )
        if self.tls is not None:
            self._tasks.append(ctx.spawn(self.tls.watch(ctx.stopping), name="tls-watch"))
        self._tasks.append(ctx.spawn(self.core.events.run(), name="rejection-events"))
        self._tasks.append(
            ctx.spawn(
                follow_actions(
                    ctx.bus, {ControlVerb.AUTH_UNBLOCK}, self.apply, ctx.stopping, ctx.log
                ),
                name="control",
            )
        )
        if self.core.scanner is not None:
            await self.core.scanner.start()
            ctx.log.info(
                "content scanning " + ("on" if self.core.scanner.active else "off"),
                extra={
                    "url": self.config.scanning.url,
                    "mode": self.config.scanning.mode,
                    "reason": self.core.scanner.off_reason,
                },
            )
        context = self.tls.context if self.tls is not None else None
        try:
            self.listeners = await listeners.bind(
                self.core, self.config.listeners, context, ctx.config.source
            )
            if self.api is not None:
                await self.api.start()
        except BaseException:
            await listeners.close(self.listeners)
            await self._stop_tasks()
            raise
        if self.api is not None:
            ctx.log.info(
                "listening",
                extra={"listener": "api", "host": self.api.host, "port": self.api.port},
            )
        for listener in self.listeners:
            ctx.log.info(
                "listening",
                extra={
                    "listener": listener.config.name,
                    "host": listener.config.host,
                    "port": listener.port,
                },
            )

    async def run(self, ctx: StageContext) -> None:
        """Serve until ``ctx.stopping``, then drain."""
        ctx.set_ready()
        try:
            await ctx.stopping.wait()
        finally:
            await self.drain(ctx)

    async def drain(self, ctx: StageContext) -> None:
        """Stop accepting, let transactions finish within the grace period, 421 the rest."""
        self.core.policy.stopping = True
        await listeners.close(self.listeners)
        for session in list(self.core.sessions):
            session.drain()
        grace = float(ctx.config.core.runtime.drain_timeout) * DRAIN_SHARE
        try:
            idle = await ctx.wait_idle(grace)
        except asyncio.CancelledError:
            # The runtime's drain deadline is shared by every stage of the process and ingest
            # stops last (``postline run``): it may cut our grace short. A session in the
            # middle of DATA still gets its 421 (RFC 5321 3.8), not a reset at exit.
            self._abort_sessions()
            raise
        if not idle:
            ctx.log.warning(
                "drain grace over, closing sessions", extra={"sessions": len(self.core.sessions)}
            )
            self._abort_sessions()
            await ctx.wait_idle(1.0)
        if self.api is not None:
            # After the grace: requests in flight held activity tokens and have finished;
            # new ones were answered 503 while core.policy.stopping was set.
            await self.api.close()
        with suppress(TimeoutError):
            await asyncio.wait_for(self.core.events.flush(), 2.0)
        await self._stop_tasks()
        if self.core.limiter is not None:
            await self.core.limiter.close()
        if self.core.scanner is not None:
            await self.core.scanner.close()

    def _abort_sessions(self) -> None:
        for session in list(self.core.sessions):
            session.abort(replies.SHUTTING_DOWN)

    async def _stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()


def check_config(config: Config) -> IngestConfig:
    """``postline config check``: the section, and that the TLS and users files load."""
    ingest = load(config)
    if ingest.tls.cert is not None:
        TlsFiles(ingest.tls, config.source, logging.getLogger("postline.ingest"))
    if ingest.users_file is not None:
        read_users(ingest.users_file)
    return ingest


async def create(ctx: StageContext) -> IngestStage:
    """Build and bind the ingest stage from ``ctx.config``."""
    # aiosmtpd logs every command at INFO on "mail.log"; ours are the structured lines.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    stage = IngestStage(ctx, load(ctx.config))
    await stage.start(ctx)
    return stage

"""The bouncer stage: what runs while it serves (its spec, ``STAGE``, is in ``main.py``).

``create`` reads ``[bouncer]``, the HMAC secret and the rule table, binds the bounce-domain
SMTP listener, adds the one-click route and the open and click tracking routes
(``tracking/``) to the process's (public) HTTP port and binds the
admin API's own listener, suppressions and tenants (so a bad file or a busy port fails the
start with one line naming the key), and loads the tenant table (the intake accepts bounces
at verified tenant domains' return-path hosts). ``run`` follows ``postline.tenants``, consumes
``postline.events``
(``bounced``/``expired`` from the deliverer: suppressions and DSNs to senders, in the batch
transaction; ``delivered``/``deferred``: the success and delay DSNs senders asked for;
``dead_letter`` audit events are counted for the dashboard) and keeps the
suppression-list gauge current, until the stop request; then it closes the listener and lets
reports in flight finish, and publishes the open and click events still waiting (the
tracking publisher runs beside the consumer). The admin listener also serves the dead
letters (``dead_api.py``), the mail queue (``queue_api.py``) and the quarantine
(``quarantine_api.py``); the stage counts the quarantine's audit events and keeps a gauge
of the messages held. With ``[bouncer.tlsrpt]`` enabled, the ``tls_session`` events are
counted into ``postline.tlsrpt`` in the same transactions and each closed day's TLS-RPT
reports are sent by a task beside the consumer (``tlsrpt/``, which says why here).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import suppress

from prometheus_client import Gauge

from services.bouncer.admin import AdminApi
from services.bouncer.config import BouncerConfig, load_bouncer_config
from services.bouncer.dead_api import DeadApi
from services.bouncer.dsngen import DsnGenerator
from services.bouncer.intake import BounceHandler, start_intake
from services.bouncer.metrics import BouncerMetrics, TrackingMetrics
from services.bouncer.outcome import Outcomes
from services.bouncer.quarantine_api import QuarantineApi
from services.bouncer.queue_api import QueueApi
from services.bouncer.suppress import SuppressionAdmin, SuppressionPolicy
from services.bouncer.tenant_api import TenantApi
from services.bouncer.tlsrpt.role import TlsReporting
from services.bouncer.tracking.endpoint import TrackingEndpoint
from services.bouncer.tracking.machine import ClickBursts
from services.bouncer.tracking.publisher import TrackingPublisher
from services.bouncer.unsubscribe import UnsubscribeEndpoint
from shared import quarantine, tenant_admin
from shared.addresshash import load_hash_key_if_present
from shared.bounceclass.rules import load_rules
from shared.bus.base import BusMessage
from shared.bus.follow import follow_topic
from shared.config import Config
from shared.errors import ListenError
from shared.runtime.batch import Item, run_batch_loop
from shared.runtime.http import Router
from shared.runtime.httpserver import HttpListener
from shared.runtime.stage import StageContext
from shared.secretfile import read_secret
from shared.tenants import TenantTable
from shared.wire.records import Event, EventKind
from shared.wire.topics import EVENTS, QUARANTINE, SUPPRESSIONS, TLSRPT, OutRecord

GROUP = "postline-bouncer"
#: The dead-letter audit events' classifications (``shared.deadletters``): a bounded label.
DEAD_LETTER_ACTIONS = frozenset({"redriven", "purged", "redrive_refused"})


class BouncerStage:
    """A running bouncer: the intake listener, the HTTP routes and the events consumer."""

    def __init__(
        self,
        ctx: StageContext,
        config: BouncerConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        source = ctx.config.source
        secret = read_secret(config.secret_file, "bouncer.secret_file", source)
        self.metrics = BouncerMetrics(ctx.registry)
        self.outcomes = Outcomes(
            table=load_rules(config.rules_file),
            policy=SuppressionPolicy(config.soft_bounce_limit, float(config.soft_bounce_window)),
            metrics=self.metrics,
            dsn=DsnGenerator(config.dsn),
        )
        timeout = float(ctx.config.core.bus.publish_timeout)
        self.tenants = TenantTable(ctx.log)
        self.handler = BounceHandler(
            config=config,
            secret=secret,
            outcomes=self.outcomes,
            bus=ctx.bus,
            publish_timeout=timeout,
            metrics=self.metrics,
            log=ctx.log,
            activity=ctx.activity,
            tenants=self.tenants,
        )
        UnsubscribeEndpoint(
            config.unsubscribe_path, secret, self.outcomes, ctx.bus, timeout
        ).register(ctx.http)
        tracking = config.tracking
        tracking_metrics = TrackingMetrics(ctx.registry)
        bursts = ClickBursts(
            tracking.burst_links, float(tracking.burst_window), tracking.recent_messages
        )
        self.tracking_events = TrackingPublisher(
            ctx.bus, timeout, bursts, tracking_metrics, ctx.log, max_pending=tracking.max_pending
        )
        TrackingEndpoint(tracking, secret, self.tracking_events, tracking_metrics).register(
            ctx.http
        )
        self.admin: HttpListener | None = None  # the admin API, apart from the public port
        if config.admin_token_file is not None:
            token = read_secret(config.admin_token_file, "bouncer.admin_token_file", source)
            routes = Router()
            admin_api = AdminApi(
                token,
                SuppressionAdmin(
                    ctx.bus, source="api", hash_key=load_hash_key_if_present(ctx.config)
                ),
            )
            admin_api.register(routes)
            TenantApi(ctx.bus).register(routes, admin_api.authenticated)
            DeadApi(ctx.bus).register(routes, admin_api.authenticated)
            QueueApi(ctx.bus).register(routes, admin_api.authenticated)
            QuarantineApi(ctx.bus).register(routes, admin_api.authenticated)
            self.admin = HttpListener(
                config.admin_host, config.admin_port, [routes], key="bouncer.admin_port"
            )
        self.server: asyncio.Server | None = None
        # TLS-RPT: counted in the events batches, sent by a task (``clock``: when days end).
        self.tlsrpt: TlsReporting | None = None
        if config.tlsrpt.enabled:
            self.tlsrpt = TlsReporting(
                config.tlsrpt,
                bus=ctx.bus,
                registry=ctx.registry,
                log=ctx.log,
                clock=clock,
                publish_timeout=timeout,
            )

    @property
    def port(self) -> int:
        """The bound SMTP port (the ephemeral one when the config said 0)."""
        assert self.server is not None and self.server.sockets
        return int(self.server.sockets[0].getsockname()[1])

    async def handle(self, items: Sequence[Item[Event]]) -> list[OutRecord]:
        """One batch of events: suppressions and DSNs for final failures, and the success
        and delay notices senders asked for (RFC 3461)."""
        out: list[OutRecord] = []
        for item in items:
            out += self.outcomes.for_failure(item.record)
            out += self.outcomes.for_notice(item.record)
            if item.record.kind is EventKind.DEAD_LETTER:
                action = item.record.classification
                known = action in DEAD_LETTER_ACTIONS
                self.metrics.dead_letter_actions.labels(action if known else "other").inc()
            elif item.record.kind is EventKind.QUARANTINE:
                action = item.record.classification
                known = action in quarantine.ACTIONS
                self.metrics.quarantine_actions.labels(action if known else "other").inc()
        if self.tlsrpt is not None:
            out += self.tlsrpt.handle(items)
        return out

    async def run(self, ctx: StageContext) -> None:
        """Consume events and track the list size until stopping; then drain."""
        helpers = [
            ctx.spawn(
                self._track_size(ctx, SUPPRESSIONS.name, self.metrics.suppression_list_size),
                name="list-size",
            ),
            ctx.spawn(
                self._track_size(ctx, QUARANTINE.name, self.metrics.quarantine_messages),
                name="quarantine-size",
            ),
            ctx.spawn(self.tenants.follow(ctx.bus, ctx.stopping, ctx.log), name="tenants"),
        ]
        reports = (
            ctx.spawn(self.tlsrpt.sender.run(ctx.stopping), name="tlsrpt")
            if self.tlsrpt is not None
            else None
        )
        tracking = ctx.spawn(self.tracking_events.run(), name="tracking-events")
        try:
            await run_batch_loop(
                ctx,
                group=GROUP,
                topic=EVENTS,
                handle=self.handle,
                metrics=ctx.metrics,
                state=self.tlsrpt,
            )
        finally:
            if self.server is not None:
                self.server.close()
            drain = float(ctx.config.core.runtime.drain_timeout)
            await ctx.wait_idle(drain)
            # Last: the HTTP port serves until the runtime closes it; what waits is published
            # now (held clicks too), what comes later is counted as dropped.
            self.tracking_events.close()
            with suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(tracking), drain)
            helpers.append(tracking)
            if reports is not None:
                # It stops after the send in hand (cancelled mid-send, a report could go
                # without its day being marked sent, and a bus read would be cut off).
                with suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(reports), drain)
                helpers.append(reports)
            if self.admin is not None:
                await self.admin.close()
            for task in helpers:
                task.cancel()
            for task in helpers:
                with suppress(asyncio.CancelledError):
                    await task

    async def _track_size(self, ctx: StageContext, topic: str, gauge: Gauge) -> None:
        """Keep ``gauge`` at the number of keys of the compacted ``topic`` (counted again
        from the start after a bus failure: replaying the compacted topic is harmless,
        records are states). Only the keys are kept: the values (whole messages, on
        ``postline.quarantine``) are read and dropped."""
        keys: set[bytes] = set()

        def count(message: BusMessage) -> None:
            if message.key is None:
                return
            if message.value is None:
                keys.discard(message.key)
            else:
                keys.add(message.key)
            gauge.set(len(keys))

        await follow_topic(ctx.bus, topic, count, ctx.stopping, ctx.log, restarted=keys.clear)


async def create(ctx: StageContext, clock: Callable[[], float] = time.time) -> BouncerStage:
    """Build the bouncer from ``ctx.config`` and bind its SMTP listener; ``clock`` tells
    the TLS-RPT sender when days end (tests pass their own)."""
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command lines
    stage = BouncerStage(ctx, load_bouncer_config(ctx.config), clock)
    # Loaded before the listener opens, so a tenant's return-path host is ours from the
    # first connection; run() follows the topic from then on.
    await tenant_admin.ensure_topics(ctx.bus)  # the admin API writes them too
    await ctx.bus.ensure_topics([QUARANTINE.name])  # followed for the gauge, and the admin API
    if stage.tlsrpt is not None:
        await ctx.bus.ensure_topics([TLSRPT.name])  # read back when the events are assigned
    await stage.tenants.load(ctx.bus)
    stage.server = await start_intake(stage.handler, stage.config)
    ctx.log.info(
        "bounce intake listening",
        extra={"host": stage.config.listen_host, "port": stage.port},
    )
    if stage.admin is not None:
        try:
            await stage.admin.start()
        except ListenError:
            stage.server.close()
            raise
    return stage


def check_config(config: Config) -> BouncerConfig:
    """``postline config check``: the section and the rule table it names."""
    section = load_bouncer_config(config)
    load_rules(section.rules_file)
    return section

"""The webhooks stage: ``postline webhooks-stage``, and its place in ``postline run``.

Two handlers on the shared out-of-order loop (``shared.runtime.watermark_loop``), each its
own consumer group: ``postline-webhooks`` reads ``postline.events`` and
``postline-webhooks-retry`` reads the retry tiers (``handlers.py``). Both send through one
:class:`~services.webhooks.dispatch.Dispatcher` (a queue, request slots and a circuit
breaker per endpoint) with one HTTP client (``client.py``, with the SSRF guard). The tenant
table (``postline.tenants``) is read before the first event, then followed: an endpoint
added, changed, paused or resumed takes effect on the next event, and a resume makes the
retry loop look at its held tiers at once.

An endpoint failing for long is paused here (``admin.set_state`` with ``by="webhooks"``: the
tenant record, its audit event and a ``webhook`` event with classification ``paused``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from typing import Any

from services.webhooks import admin
from services.webhooks.breaker import Breaker
from services.webhooks.client import WebhookClient
from services.webhooks.config import WebhooksConfig, load
from services.webhooks.dispatch import Dispatcher
from services.webhooks.endpoints import Endpoints, Target
from services.webhooks.handlers import EventHandler, RetryHandler
from services.webhooks.metrics import WebhooksMetrics
from services.webhooks.retry import RETRY_GROUP, Schedule
from shared.config import Config
from shared.errors import BusError, TenantError, WebhookError
from shared.netguard import Policy
from shared.runtime.stage import StageContext
from shared.runtime.watermark_loop import LoopSettings, WatermarkLoop
from shared.sealing import load_keyring_if_present
from shared.tenants import TenantTable
from shared.wire.records import Event, Tenant, TenantState, WebhookAttempt
from shared.wire.topics import DEAD, EVENTS, TENANTS, webhook_retry_topic

GROUP = "postline-webhooks"
#: How often the retry loop commits; tier delays are seconds to hours, so this is plenty.
RETRY_FLUSH = 0.5


def policy_of(cfg: WebhooksConfig) -> Policy:
    """The SSRF policy the config sets."""
    return Policy(
        allow_private_networks=cfg.allow_private_networks,
        allow_http_loopback=cfg.allow_http_loopback,
    )


def client_of(cfg: WebhooksConfig) -> WebhookClient:
    """The HTTP client the config describes (the stage's and ``postline webhooks test``)."""
    return WebhookClient(
        policy_of(cfg),
        timeout=float(cfg.request_timeout),
        connect_timeout=float(cfg.connect_timeout),
        ca_file=cfg.ca_file,
        user_agent=cfg.user_agent,
    )


class WebhooksStage:
    """A running webhooks stage (see the module docstring)."""

    def __init__(self, ctx: StageContext, cfg: WebhooksConfig) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.metrics = WebhooksMetrics(ctx.registry)
        self.tenants = TenantTable(ctx.log)
        self.endpoints = Endpoints(
            self.tenants,
            load_keyring_if_present(ctx.config),
            remember_messages=cfg.remember_messages,
            unattributed=lambda event: self.metrics.unattributed.labels(event.kind).inc(),
        )
        self.schedule = Schedule(cfg)
        self.client = client_of(cfg)
        self.clock = time.time
        self._pausing: set[tuple[str, str]] = set()
        self.dispatcher = Dispatcher(
            cfg,
            self.client,
            self.endpoints,
            self.metrics,
            spawn=self._spawn,
            activity=ctx.activity,
            on_pause=self._pause,
            clock=self._now,
        )
        self.events: WatermarkLoop[Event] | None = None  # set while running
        self.retries: WatermarkLoop[WebhookAttempt] | None = None

    def _now(self) -> float:
        return self.clock()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        return self.ctx.spawn(coro, name=name, daemon=False)

    def _loops(self, ctx: StageContext) -> dict[str, WatermarkLoop[Any]]:
        cfg = self.cfg
        events = WatermarkLoop(
            ctx,
            group=GROUP,
            topics=[EVENTS.name],
            record=EVENTS,
            handler=EventHandler(
                self.endpoints, self.dispatcher, self.schedule, self.metrics, self._now
            ),
            settings=LoopSettings(
                max_in_flight=cfg.max_in_flight,
                fetch_batch=cfg.fetch_batch,
                flush_interval=float(cfg.flush_interval),
                # No event waits longer than its requests' timeouts in its queue; this only
                # catches a lost job (a bug): the event goes to the retry tiers.
                max_hold=float(cfg.request_timeout) * 6 + 60,
            ),
            metrics=ctx.metrics,
        )
        retries = WatermarkLoop(
            ctx,
            group=RETRY_GROUP,
            topics=self.schedule.topics,
            record=webhook_retry_topic(cfg.tiers[0]),
            handler=RetryHandler(
                self.endpoints, self.dispatcher, self.schedule, self.metrics, self._now
            ),
            settings=LoopSettings(
                max_in_flight=cfg.max_in_flight,
                fetch_batch=cfg.fetch_batch,
                flush_interval=RETRY_FLUSH,
                max_hold=float(cfg.request_timeout) * 6 + 60,
            ),
            metrics=ctx.metrics,
        )
        self.events, self.retries = events, retries
        return {"events": events, "retry": retries}

    async def run(self, ctx: StageContext) -> None:
        """Send webhooks until ``ctx.stopping``, then drain; see the module docstring."""
        await ctx.bus.ensure_topics([EVENTS.name, TENANTS.name, DEAD.name, *self.schedule.topics])
        await self.tenants.load(ctx.bus)
        self._count_paused()
        self.tenants.on_change(self._tenant_changed)
        follower = ctx.spawn(self.tenants.follow(ctx.bus, ctx.stopping, ctx.log), name="tenants")
        await self.client.start()
        loops = self._loops(ctx)
        try:
            for loop in loops.values():
                if not await loop.start():
                    return
            ctx.set_ready()
            tasks = [ctx.spawn(loop.run(), name=name) for name, loop in loops.items()]
            await asyncio.wait(tasks)
        finally:
            for loop in loops.values():
                await loop.stop()
            await self.client.close()
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower

    def _tenant_changed(self, before: Tenant | None, after: Tenant | None) -> None:
        """A resumed endpoint's waiting events are looked at again at once."""
        self._count_paused()
        if before is None or after is None or self.retries is None:
            return
        was = {e.id for e in before.webhooks if e.status.state is not TenantState.ACTIVE}
        now_active = {e.id for e in after.webhooks if e.status.state is TenantState.ACTIVE}
        if was & now_active:
            self.retries.release_holds()

    def _count_paused(self) -> None:
        self.metrics.paused.set(
            sum(
                1
                for tenant in self.tenants
                for e in tenant.webhooks
                if e.status.state is not TenantState.ACTIVE
            )
        )

    def _pause(self, target: Target, breaker: Breaker) -> None:
        """Pause an endpoint that failed for long (once at a time per endpoint)."""
        if target.key in self._pausing or target.paused:
            return
        self._pausing.add(target.key)
        why = (
            f"{breaker.consecutive} failed requests in a row over "
            f"{(self._now() - breaker.first_failure_at) / 60:.0f} minutes"
        )
        self._spawn(self._publish_pause(target, why), f"pause:{target.endpoint.id}")

    async def _publish_pause(self, target: Target, why: str) -> None:
        try:
            tenant = self.tenants.get(target.tenant)
            if tenant is None:
                return
            if await admin.set_state(
                self.ctx.bus, tenant, target.endpoint.id, TenantState.PAUSED, by="webhooks", why=why
            ):
                self.metrics.pauses.inc()
                self.ctx.log.warning(
                    "webhook endpoint paused",
                    extra={"tenant": target.tenant, "endpoint": target.endpoint.id, "why": why},
                )
        except (BusError, TenantError, WebhookError) as exc:
            # Tried again on the next failure (the breaker still says so).
            self.ctx.log.warning(
                "pausing a webhook endpoint failed",
                extra={"tenant": target.tenant, "endpoint": target.endpoint.id, "error": str(exc)},
            )
        finally:
            self._pausing.discard(target.key)


async def create(ctx: StageContext) -> WebhooksStage:
    """Build the stage from ``[webhooks]`` (raises ``ConfigError`` naming the key)."""
    return WebhooksStage(ctx, load(ctx.config))


def check_config(config: Config) -> WebhooksConfig:
    """Validate ``[webhooks]`` for ``postline config check``."""
    return load(config)

"""The reputation stage: what runs (its spec, ``STAGE``, is in ``main.py``), run alone as
``postline reputation-stage`` (``postline reputation`` prints the table its records make)
and in ``postline run`` at order 50, after the bouncer whose events it reads.

Reads ``postline.events`` as group ``postline-reputation`` through ``shared.runtime.batch``:
each batch's counts (the changed ``Reputation`` records on ``postline.reputation``), its
decisions (``reputation`` events) and its pauses (tenant records and their audit events on
``postline.tenants``) are published with the input offsets in one transaction. The state
is the compacted topic itself: loaded when the consumer is assigned its partitions (at
start, and again after a rebalance), so a restart resumes exactly where the last commit
left off. Follows ``postline.tenants`` for each tenant's thresholds and domains.

**One replica.** A scope's counts add up events from every partition of
``postline.events``, so one consumer must own them all: two replicas would each write their
half of the same records. The Deployment runs one replica with the Recreate strategy (the
old pod stops before the new one starts); the consumer group would also hand every
partition to one member, but only Recreate keeps two from writing during a rollout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from services.reputation.actions import pause_records
from services.reputation.config import ReputationConfig, load_reputation_config
from services.reputation.engine import Engine, Outcome
from services.reputation.metrics import ReputationMetrics, ReputationSensor
from shared.bounceclass.rules import RuleTable, load_rules
from shared.bus.base import TopicPartition
from shared.config import Config
from shared.credential_holds import HELD
from shared.errors import DecodeError
from shared.reputation import LEVEL_PAUSED, LEVEL_WARNING
from shared.runtime.batch import Item, run_batch_loop
from shared.runtime.stage import StageContext
from shared.tenants import TenantTable
from shared.wire.records import Event, Reputation, now
from shared.wire.topics import CONTROL, EVENTS, REPUTATION, TENANTS, OutRecord

GROUP = "postline-reputation"


class ReputationStage:
    """A running reputation stage: the engine, its tenants and the events consumer."""

    def __init__(self, ctx: StageContext, config: ReputationConfig, rules: RuleTable) -> None:
        self.config = config
        self.ctx = ctx
        pools = ctx.config.core.pools
        self.tenants = TenantTable(ctx.log)
        self.engine = Engine(
            config,
            rules,
            self.tenants.get,
            warming=pools.warming(),
            warmup_config=pools.warmup,
        )
        self.metrics = ReputationMetrics(ctx.registry)
        self.sensor = ReputationSensor(
            self.metrics,
            tenant_label=ctx.config.core.metrics.tenant_label,
            warming=pools.warming(),
            warmup=pools.warmup,
        )
        self._outcome: Outcome | None = None

    async def handle(self, items: Sequence[Item[Event]]) -> list[OutRecord]:
        """One batch: counted, judged; its records, decisions and pauses to publish."""
        for item in items:
            self.engine.apply(item.record)
        outcome = self.engine.finish()
        self._outcome = outcome
        return outcome.records + await pause_records(self.ctx.bus, outcome.pauses, now())

    def committed(self) -> None:
        """The batch committed: keep its counts, count its decisions, update the gauges."""
        self.engine.committed()
        if self._outcome is not None:
            self.sensor.decided(self._outcome.decisions)
            for _, signals in self._outcome.holds:
                self.sensor.held(signals)
            for decision in self._outcome.decisions:
                loud = decision.classification in (LEVEL_WARNING, LEVEL_PAUSED, HELD)
                self.ctx.log.log(
                    logging.WARNING if loud else logging.INFO,
                    "reputation decision",
                    extra={
                        "tenant": decision.tenant,
                        "credential": decision.credential,
                        "scope": decision.scope,
                        "classification": decision.classification,
                        "why": decision.detail,
                    },
                )
            self._outcome = None
        self.sensor.refresh(self.engine.table.committed_records(), self.engine.table.clock)

    def discarded(self) -> None:
        """The batch did not commit: forget it."""
        self.engine.discarded()
        self._outcome = None

    async def assigned(self, partitions: frozenset[TopicPartition]) -> None:
        """Load the state from ``postline.reputation`` (before any record is handled)."""
        table = await self.ctx.bus.read_table(REPUTATION.name)
        records: dict[str, Reputation] = {}
        for key, value in table.items():
            try:
                records[key.decode()] = REPUTATION.decode(value)
            except DecodeError as exc:  # a newer writer's record: that scope starts afresh
                self.ctx.log.warning(
                    "undecodable reputation record skipped",
                    extra={"key": key.decode("utf-8", "replace"), "error": str(exc)},
                )
        self.engine.load(records)
        self.sensor.refresh(self.engine.table.committed_records(), self.engine.table.clock, True)
        self.ctx.log.info(
            "reputation state loaded",
            extra={"records": len(records), "partitions": len(partitions)},
        )

    async def run(self, ctx: StageContext) -> None:
        """Consume events until stopping; then drain."""
        await ctx.bus.ensure_topics([REPUTATION.name, EVENTS.name, TENANTS.name, CONTROL.name])
        await self.tenants.load(ctx.bus)
        follower = ctx.spawn(self.tenants.follow(ctx.bus, ctx.stopping, ctx.log), name="tenants")
        try:
            await run_batch_loop(
                ctx,
                group=GROUP,
                topic=EVENTS,
                handle=self.handle,
                metrics=ctx.metrics,
                state=self,
            )
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower


def _rules(config: Config, section: ReputationConfig) -> RuleTable:
    return load_rules(section.rule_table_path(config.core.bouncer))


async def create(ctx: StageContext) -> ReputationStage:
    """Build the stage from ``ctx.config`` (a bad section or rule table fails the start)."""
    section = load_reputation_config(ctx.config)
    return ReputationStage(ctx, section, _rules(ctx.config, section))


def check_config(config: Config) -> ReputationConfig:
    """``postline config check``: the section and the rule table it uses."""
    section = load_reputation_config(config)
    _rules(config, section)
    return section

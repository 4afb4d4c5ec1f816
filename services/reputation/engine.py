"""The reputation stage's logic for one batch of events: count, judge, decide.

Owns, per batch: counting each event into its scopes' windows (tenant ``tenant|T``, sending
domain ``domain|T|D``, provider ``provider|T|P``: ``shared.reputation``) and a warming
source address's day (``address|IP|P``: ``warmup.py``); applying an operator's resume of a
scope it paused (``tenant_changed`` events: the scope's window starts afresh, or it would be
paused again at once); then judging every scope the batch touched (every scope once the
clock enters a new hour, as the window slides) and turning level changes into decisions:
``reputation`` events with the figures, and pauses for ``actions.py`` to publish.

Which scopes may be paused: a tenant with a record (the implicit ``default`` tenant of a
single-business setup has none, so it is warned about, never paused); a verified-or-not
sending domain of such a tenant, unless the tenant itself is paused (the tenant's pause
covers it, and one resume then suffices); never a tenant-provider pair (one provider's
complaints are a warning: the deliverer's throttling answers that provider).

Time is the events' (``event.at``), never the wall clock: the same events give the same
records, which is what makes a restart or a replay exact. Pure apart from the tenant
lookup; publishes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import msgspec

from services.reputation import warmup
from services.reputation.config import ReputationConfig
from services.reputation.counting import DELIVERER, Attribution, Contribution, contribution
from services.reputation.levels import Thresholds, judge
from services.reputation.table import ScopeTable
from services.reputation.window import add, first_hour, hour_of, prune
from shared.bounceclass.rules import RuleTable
from shared.errors import DecodeError
from shared.pools import PoolAddress, WarmupConfig, warmup_key
from shared.reputation import (
    LEVEL_OK,
    LEVEL_PAUSED,
    SCOPE_ADDRESS,
    SCOPE_DOMAIN,
    SCOPE_PROVIDER,
    SCOPE_TENANT,
    day_of,
    domain_key,
    figures,
    provider_key,
    tenant_key,
    total,
)
from shared.wire.records import (
    Event,
    EventKind,
    Reputation,
    ReputationThresholds,
    Tenant,
    TenantState,
)
from shared.wire.topics import EVENTS, REPUTATION, TENANTS, OutRecord

STAGE = "reputation"
RECOVERED = "recovered"
#: Judged in this order, so a domain sees its tenant's level of the same batch.
_SCOPE_ORDER = {SCOPE_TENANT: 0, SCOPE_DOMAIN: 1, SCOPE_PROVIDER: 2}
#: What an attempt's outcome (``counting``) is for a warming address's day.
_WARMUP_OUTCOME = {
    "delivered": warmup.DELIVERED,
    "hard": warmup.BOUNCED,
    "block": warmup.BOUNCED,
    "soft": warmup.FAILED,
    "deferred": warmup.DEFERRED,
}

TenantLookup = Callable[[str], Tenant | None]


@dataclass(frozen=True)
class Pause:
    """A tenant (``domain`` ""), or one of its sending domains, to pause."""

    tenant: str
    domain: str
    why: str


@dataclass
class Outcome:
    """What one batch decided: records to publish, pauses to apply, decision events."""

    records: list[OutRecord] = field(default_factory=list)
    pauses: list[Pause] = field(default_factory=list)
    decisions: list[Event] = field(default_factory=list)


class Engine:
    """Counts and judges; one per stage (no global state)."""

    def __init__(
        self,
        config: ReputationConfig,
        rules: RuleTable,
        tenants: TenantLookup,
        *,
        warming: Mapping[str, PoolAddress] | None = None,
        warmup_config: WarmupConfig | None = None,
    ) -> None:
        self.config = config
        self.table = ScopeTable()
        self._rules = rules
        self._tenants = tenants
        self._warming = warming or {}
        self._warmup = warmup_config or WarmupConfig()
        self._attribution = Attribution(config.attribution_cache)
        self._touched: set[str] = set()
        self._decisions: list[Event] = []

    def load(self, records: Mapping[str, Reputation]) -> None:
        """Start from the records on ``postline.reputation``."""
        self.table.load(records)

    def apply(self, event: Event) -> None:
        """Count one event (tentatively: the batch may still be discarded)."""
        if event.kind is EventKind.TENANT_CHANGED:
            self._tenant_changed(event)
            return
        found = contribution(event, self._rules, self._attribution)
        if found is None:
            return
        # Only the pipeline's outcomes move the clock: an audit event carries the time of
        # the machine an operator ran the CLI on, which may be far off.
        self.table.advance(event.at)
        counted, outcome = found
        self._count(counted)
        if event.stage == DELIVERER and event.source in self._warming and event.provider:
            self._warmup_attempt(event, _WARMUP_OUTCOME.get(outcome, ""))

    def finish(self) -> Outcome:
        """Judge what the batch touched and return its outcome (the table keeps the
        batch's changes until :meth:`committed` or :meth:`discarded`)."""
        outcome = Outcome()
        newest = hour_of(self.table.clock)
        sweep = newest > hour_of(self.table.committed_clock)
        keys = self.table.all_keys() if sweep else sorted(self._touched)
        scoped = [(k, r) for k in keys if (r := self.table.get(k)) and r.scope in _SCOPE_ORDER]
        for key, record in sorted(scoped, key=lambda kr: (_SCOPE_ORDER[kr[1].scope], kr[0])):
            self._judge(key, record, newest, outcome)
        outcome.decisions = self._decisions
        for key, changed in self.table.changes().items():
            outcome.records.append(
                REPUTATION.out(changed) if changed is not None else REPUTATION.tombstone(key)
            )
        outcome.records += [
            OutRecord(EVENTS.name, _event_key(e).encode(), EVENTS.encode(e))
            for e in outcome.decisions
        ]
        self._touched = set()
        self._decisions = []
        return outcome

    def committed(self) -> None:
        """The batch committed."""
        self.table.committed()

    def discarded(self) -> None:
        """The batch did not commit: forget its counts and decisions."""
        self.table.discarded()
        self._touched = set()
        self._decisions = []

    # Counting.

    def _count(self, counted: Contribution) -> None:
        hours = self.config.window_hours
        hour = hour_of(counted.at)
        if hour < first_hour(hour_of(self.table.clock), hours):
            return  # older than the window: it no longer counts
        keys = [(tenant_key(counted.tenant), SCOPE_TENANT, "", "")]
        if counted.domain:
            keys.append(
                (domain_key(counted.tenant, counted.domain), SCOPE_DOMAIN, counted.domain, "")
            )
        if counted.provider:
            keys.append(
                (
                    provider_key(counted.tenant, counted.provider),
                    SCOPE_PROVIDER,
                    "",
                    counted.provider,
                )
            )
        for key, scope, domain, provider in keys:
            record = self.table.get(key) or Reputation(
                key=key, scope=scope, tenant=counted.tenant, domain=domain, provider=provider
            )
            buckets = add(record.buckets, hour, counted.counts)
            self.table.put(msgspec.structs.replace(record, buckets=buckets))
            self._touched.add(key)

    def _warmup_attempt(self, event: Event, outcome: str) -> None:
        if not outcome:
            return
        key = warmup_key(event.source, event.provider)
        record = self.table.get(key)
        day = day_of(event.at)
        state = record.warmup if record is not None else None
        if state is None:
            state = warmup.begin(day, event.at, self._warmup)
        elif day < state.day:
            return  # a late attempt of a day already judged
        elif day > state.day:
            state, judgement = warmup.roll(state, day, event.at, self._warmup)
            if judgement is not None:
                self._decide(
                    _address_record(key, event),
                    judgement.decision,
                    judgement.figures,
                    f"day {int(judgement.figures['day'])}: {judgement.decision}",
                )
        base = record or _address_record(key, event)
        self.table.put(
            msgspec.structs.replace(
                base, warmup=warmup.count(state, outcome), updated_at=self.table.clock
            )
        )

    # Operators' resumes.

    def _tenant_changed(self, event: Event) -> None:
        try:
            before = TENANTS.decode(event.before) if event.before else None
            after = TENANTS.decode(event.after) if event.after else None
        except DecodeError:
            return  # a newer writer's record: nothing this version can tell from it
        if after is None:
            if before is not None:
                self._forget_tenant(before.id)
            return
        if before is None:
            return
        if (
            before.status.state is not TenantState.ACTIVE
            and after.status.state is TenantState.ACTIVE
        ):
            self._resumed(tenant_key(after.id), event, reset_tenant=after.id)
        was = {d.name: d.status.state for d in before.domains}
        for domain in after.domains:
            earlier = was.get(domain.name, TenantState.ACTIVE)
            if earlier is not TenantState.ACTIVE and domain.status.state is TenantState.ACTIVE:
                self._resumed(domain_key(after.id, domain.name), event)

    def _resumed(self, key: str, event: Event, reset_tenant: str = "") -> None:
        """An operator resumed the scope of ``key``: when this stage paused it, its window
        starts afresh (a tenant's: its domains' and providers' too) and it has recovered."""
        record = self.table.get(key)
        if record is None or record.level != LEVEL_PAUSED:
            return  # not paused by us (an operator's own pause): nothing to undo
        counts = total(record.buckets)
        self._reset(record)
        self._decide(
            self.table.get(key) or record,
            RECOVERED,
            figures(counts, self.config.window_hours),
            f"resumed by {event.by or 'an operator'}",
        )
        if reset_tenant:
            for other in self._tenant_scopes(reset_tenant):
                if other.scope != SCOPE_TENANT and other.level != LEVEL_PAUSED:
                    self._reset(other)

    def _reset(self, record: Reputation) -> None:
        self.table.put(
            msgspec.structs.replace(
                record,
                buckets=(),
                level=LEVEL_OK,
                level_since=self.table.clock,
                updated_at=self.table.clock,
            )
        )
        self._touched.add(record.key)

    def _forget_tenant(self, tenant: str) -> None:
        for record in self._tenant_scopes(tenant):
            self.table.remove(record.key)

    def _tenant_scopes(self, tenant: str) -> list[Reputation]:
        return [r for r in self.table.current() if r.tenant == tenant and r.scope != SCOPE_ADDRESS]

    # Judging.

    def _judge(self, key: str, record: Reputation, newest_hour: int, outcome: Outcome) -> None:
        buckets = prune(record.buckets, newest_hour, self.config.window_hours)
        if not buckets and record.level == LEVEL_OK:
            self.table.remove(key)  # nothing left in the window: the key leaves the topic
            return
        tenant = self._tenants(record.tenant)
        own = tenant.settings.reputation if tenant is not None else ReputationThresholds()
        counts = total(buckets)
        verdict = judge(
            counts,
            Thresholds.of(self.config, own),
            current=record.level,
            may_pause=self._may_pause(record, tenant),
            recover_ratio=self.config.recover_ratio,
            window_hours=self.config.window_hours,
        )
        changed = verdict.level != record.level
        judged = msgspec.structs.replace(
            record,
            buckets=buckets,
            level=verdict.level,
            level_since=self.table.clock if changed else record.level_since,
            updated_at=self.table.clock,
        )
        self.table.put(judged)
        if not changed:
            return
        decision = RECOVERED if verdict.level == LEVEL_OK else verdict.level
        why = verdict.why or "rates back under the warning levels"
        self._decide(judged, decision, figures(counts, self.config.window_hours), why)
        if verdict.level == LEVEL_PAUSED:
            domain = record.domain if record.scope == SCOPE_DOMAIN else ""
            outcome.pauses.append(Pause(record.tenant, domain, verdict.why))

    def _may_pause(self, record: Reputation, tenant: Tenant | None) -> bool:
        if tenant is None or record.scope == SCOPE_PROVIDER:
            return False
        if record.scope == SCOPE_TENANT:
            return True
        owner = self.table.get(tenant_key(record.tenant))
        if owner is not None and owner.level == LEVEL_PAUSED:
            return False
        return any(d.name == record.domain for d in tenant.domains)

    def _decide(
        self, record: Reputation, decision: str, numbers: dict[str, float], why: str
    ) -> None:
        self._decisions.append(
            Event(
                kind=EventKind.REPUTATION,
                at=self.table.clock,
                tenant=record.tenant,
                domain=record.domain,
                provider=record.provider,
                source=record.address,
                scope=record.scope,
                classification=decision,
                detail=why,
                figures=numbers,
                stage=STAGE,
            )
        )


def _address_record(key: str, event: Event) -> Reputation:
    return Reputation(key=key, scope=SCOPE_ADDRESS, address=event.source, provider=event.provider)


def _event_key(event: Event) -> str:
    """A decision's key on ``postline.events``: its scope's record key, so one scope's
    decisions keep their order on one partition."""
    if event.scope == SCOPE_ADDRESS:
        return warmup_key(event.source, event.provider)
    if event.scope == SCOPE_DOMAIN:
        return domain_key(event.tenant, event.domain)
    if event.scope == SCOPE_PROVIDER:
        return provider_key(event.tenant, event.provider)
    return tenant_key(event.tenant)

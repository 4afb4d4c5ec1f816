"""The reputation stage's logic for one batch of events: count, judge, decide.

Owns, per batch: counting each event into its scopes' windows (tenant ``tenant|T``, sending
domain ``domain|T|D``, provider ``provider|T|P``: ``shared.reputation``) and a warming
source address's day (``address|IP|P``: ``warmup.py``); applying an operator's resume of a
scope it paused (``tenant_changed`` events: the scope's window starts afresh, or it would be
paused again at once); then judging every scope the batch touched (every scope once the
clock enters a new hour, as the window slides) and turning level changes into decisions:
``reputation`` events with the figures, and pauses for ``actions.py`` to publish.

Compromised-account detection (``credentials.py``) runs on the same events: per credential
(scope ``credential``, key ``credential|<login>``) ingest's ``accepted`` and ``scanned``
events and the hard bounces of its messages are counted per bucket; a credential whose
current bucket rises far enough over its baseline is held: a ``credential_hold`` action on
``postline.control`` (every ingest replica then refuses it) and a ``credential`` event, in
the batch's transaction. An operator's ``credential`` events (``postline credential``)
release a hold (the current bucket starts afresh) or record an operator's own hold.

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

from services.reputation import credentials, warmup
from services.reputation.config import ReputationConfig
from services.reputation.counting import (
    BOUNCER,
    DELIVERER,
    Attribution,
    Contribution,
    bouncer_counts,
    contribution,
    deliverer_counts,
)
from services.reputation.levels import Thresholds, judge
from services.reputation.table import ScopeTable
from services.reputation.window import add, first_hour, hour_of, prune
from shared import credential_holds
from shared.bounceclass.rules import RuleTable
from shared.errors import DecodeError
from shared.pools import PoolAddress, WarmupConfig, warmup_key
from shared.reputation import (
    BY,
    LEVEL_OK,
    LEVEL_PAUSED,
    SCOPE_ADDRESS,
    SCOPE_CREDENTIAL,
    SCOPE_DOMAIN,
    SCOPE_PROVIDER,
    SCOPE_TENANT,
    credential_key,
    day_of,
    domain_key,
    figures,
    provider_key,
    tenant_key,
    total,
)
from shared.wire.records import (
    CredentialWindow,
    Event,
    EventKind,
    Reputation,
    ReputationThresholds,
    Tenant,
    TenantState,
)
from shared.wire.topics import EVENTS, REPUTATION, TENANTS, OutRecord

STAGE = "reputation"
INGEST = "ingest"
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
    #: Credentials held by this batch: the ``credential`` event and the signals that fired.
    holds: list[tuple[Event, tuple[str, ...]]] = field(default_factory=list)


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
        self._owners = credentials.Owners(config.credentials.bounce_memory)
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
        if self.config.credentials.enabled:
            self._credential_event(event)
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
        if self.config.credentials.enabled:
            swept = self._bucket_changed()
            for key in self.table.all_keys() if swept else sorted(self._touched):
                found = self.table.get(key)
                if found is not None and found.scope == SCOPE_CREDENTIAL:
                    self._judge_credential(found, outcome)
        outcome.decisions = self._decisions
        for key, changed in self.table.changes().items():
            outcome.records.append(
                REPUTATION.out(changed) if changed is not None else REPUTATION.tombstone(key)
            )
        outcome.records += [
            OutRecord(EVENTS.name, _event_key(e).encode(), EVENTS.encode(e))
            for e in outcome.decisions
        ]
        # The hold itself, in the same transaction as its event and the held record.
        outcome.records += [credential_holds.hold_action(event) for event, _ in outcome.holds]
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

    # Compromised-account detection.

    def _credential_event(self, event: Event) -> None:
        """Count what ``event`` tells about a credential's sending, or apply an operator's
        hold or release of one."""
        if event.kind is EventKind.CREDENTIAL:
            if event.stage != STAGE and event.credential:
                self._operator_credential(event)
            return
        login = event.credential
        if event.kind is EventKind.ACCEPTED and event.stage == INGEST and login:
            self._owners.remember(event.message_id, login)
            domains = tuple(sorted({d.lower() for d in event.recipient_domains}))
            sent = credentials.Sent(messages=1, recipients=event.recipients, domains=domains)
        elif event.kind is EventKind.SCANNED and login:
            spam = event.classification in credentials.SPAM_VERDICTS
            sent = credentials.Sent(scanned=1, spam=int(spam))
        elif event.kind is EventKind.BOUNCED and self._hard(event):
            # Bounces name no credential: the message's, from its accepted event. A bounce
            # of a message older than the remembered ids (bounce_memory), or accepted
            # before this process started, is not counted.
            owner = self._owners.lookup(event.message_id)
            if owner is None:
                return
            login, sent = owner, credentials.Sent(hard_bounces=1)
        else:
            return
        self.table.advance(event.at)
        self._count_credential(login, event.tenant, event.at, sent)

    def _hard(self, event: Event) -> bool:
        """Whether a ``bounced`` event is a hard bounce (as the tenant counts read it)."""
        if event.stage == DELIVERER:
            found = deliverer_counts(event, self._rules)
            return found is not None and found[0].hard_bounces > 0
        if event.stage == BOUNCER:
            counts = bouncer_counts(event)
            return counts is not None and counts.hard_bounces > 0
        return False

    def _count_credential(self, login: str, tenant: str, at: float, sent: credentials.Sent) -> None:
        settings = self.config.credentials
        index = credentials.index_of(at, settings.bucket)
        if (
            index
            < credentials.index_of(self.table.clock, settings.bucket) - settings.baseline_buckets
        ):
            return  # older than the baseline: it no longer counts
        record = self._credential_record(login, tenant)
        window = self._window(record)
        self.table.put(
            msgspec.structs.replace(
                record,
                tenant=tenant or record.tenant,
                credential=credentials.count(window, index, sent),
                updated_at=self.table.clock,
            )
        )
        self._touched.add(record.key)

    def _credential_record(self, login: str, tenant: str = "") -> Reputation:
        key = credential_key(login)
        return self.table.get(key) or Reputation(key=key, scope=SCOPE_CREDENTIAL, tenant=tenant)

    def _window(self, record: Reputation) -> CredentialWindow:
        """The record's window; a new one when there is none or its bucket length changed
        (counts of another length cannot be compared), keeping a hold in force."""
        bucket = float(self.config.credentials.bucket)
        window = record.credential
        if window is None:
            return credentials.empty(bucket)
        if window.bucket != bucket:
            return msgspec.structs.replace(
                credentials.empty(bucket),
                held=window.held,
                held_since=window.held_since,
                why=window.why,
            )
        return window

    def _bucket_changed(self) -> bool:
        bucket = self.config.credentials.bucket
        now = credentials.index_of(self.table.clock, bucket)
        return now > credentials.index_of(self.table.committed_clock, bucket)

    def _judge_credential(self, record: Reputation, outcome: Outcome) -> None:
        settings = self.config.credentials
        current = credentials.index_of(self.table.clock, settings.bucket)
        window = credentials.prune(self._window(record), current, settings.baseline_buckets)
        if not window.buckets and not window.held:
            self.table.remove(record.key)  # nothing left to compare with: off the topic
            return
        login = record.key.removeprefix(f"{SCOPE_CREDENTIAL}|")
        hold = None if window.held else credentials.judge(window, current, settings)
        if hold is not None:
            window = msgspec.structs.replace(
                window, held=True, held_since=self.table.clock, why=hold.why
            )
            event = credential_holds.credential_event(
                login,
                credential_holds.HELD,
                by=BY,
                why=hold.why,
                at=self.table.clock,
                stage=STAGE,
                tenant=record.tenant,
                figures=hold.figures,
            )
            self._decisions.append(event)
            outcome.holds.append((event, hold.signals))
        if window != record.credential:
            self.table.put(
                msgspec.structs.replace(record, credential=window, updated_at=self.table.clock)
            )

    def _operator_credential(self, event: Event) -> None:
        """An operator held or released a credential (``postline credential``)."""
        login = event.credential
        if event.classification == credential_holds.RELEASED:
            record = self.table.get(credential_key(login))
            if record is None:
                return
            current = credentials.index_of(self.table.clock, self.config.credentials.bucket)
            window = credentials.restart(self._window(record), current)
        elif event.classification == credential_holds.HELD:
            record = self._credential_record(login, event.tenant)
            window = self._window(record)
            if window.held:
                return
            window = msgspec.structs.replace(
                window, held=True, held_since=event.at, why=event.detail
            )
        else:
            return
        self.table.put(
            msgspec.structs.replace(record, credential=window, updated_at=self.table.clock)
        )
        self._touched.add(record.key)  # judged with the batch: an emptied window leaves

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
        return [
            r
            for r in self.table.current()
            if r.tenant == tenant and r.scope not in (SCOPE_ADDRESS, SCOPE_CREDENTIAL)
        ]

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
    if event.scope == SCOPE_CREDENTIAL:
        return credential_holds.event_key(event.credential)
    if event.scope == SCOPE_DOMAIN:
        return domain_key(event.tenant, event.domain)
    if event.scope == SCOPE_PROVIDER:
        return provider_key(event.tenant, event.provider)
    return tenant_key(event.tenant)

"""The engine on event sequences with their own times: counts per scope, pauses, resumes,
the sliding window, warm-up days, and batches that are discarded or replayed."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from services.reputation.config import ReputationConfig
from services.reputation.engine import Engine, Outcome, Pause
from shared import tenant_admin
from shared.bounceclass.rules import load_rules
from shared.pools import PoolAddress, WarmupConfig
from shared.reputation import DAY, HOUR, total
from shared.wire.records import (
    Event,
    EventKind,
    Reputation,
    SendingDomain,
    SmtpReply,
    Tenant,
    TenantState,
    TenantStatus,
)
from shared.wire.topics import EVENTS, REPUTATION

T0 = 1_780_000_000.0  # event times: the tests never read the wall clock
CONFIG = ReputationConfig(min_messages=20)
NO_USER = SmtpReply(code=550, enhanced="5.1.1", text="no such user")
SHOP = Tenant(
    id="shop",
    domains=(SendingDomain(name="shop.test"), SendingDomain(name="news.shop.test")),
)


def engine(tenants: Iterable[Tenant] = (SHOP,), **kwargs: object) -> Engine:
    table = {t.id: t for t in tenants}
    return Engine(CONFIG, load_rules(), table.get, **kwargs)  # type: ignore[arg-type]


def sent(
    n: int,
    *,
    bounced: int = 0,
    at: float = T0,
    tenant: str = "shop",
    sender: str = "app@shop.test",
    source: str = "",
) -> list[Event]:
    """``n`` final outcomes, the first ``bounced`` of them hard bounces."""
    return [
        Event(
            kind=EventKind.BOUNCED if i < bounced else EventKind.DELIVERED,
            message_id=f"{tenant}-{sender}-{at}-{i}",
            at=at + i * 0.001,
            tenant=tenant,
            sender=sender,
            provider="google",
            reply=NO_USER if i < bounced else None,
            stage="deliverer",
            source=source,
        )
        for i in range(n)
    ]


def batch(engine: Engine, events: Iterable[Event], commit: bool = True) -> Outcome:
    for event in events:
        engine.apply(event)
    outcome = engine.finish()
    if commit:
        engine.committed()
    return outcome


def record(engine: Engine, key: str) -> Reputation:
    found = engine.table.get(key)
    assert found is not None, key
    return found


def decisions(outcome: Outcome) -> list[tuple[str, str]]:
    return [(e.scope, e.classification) for e in outcome.decisions]


def resumed(tenant: Tenant, *, domain: str = "") -> Event:
    """The audit event of an operator's resume (of the tenant, or of one domain)."""
    paused = TenantStatus(state=TenantState.PAUSED, by="reputation", why="x")
    if domain:
        before = msgspec.structs.replace(
            tenant,
            domains=tuple(
                msgspec.structs.replace(d, status=paused) if d.name == domain else d
                for d in tenant.domains
            ),
        )
    else:
        before = msgspec.structs.replace(tenant, status=paused)
    return Event(
        kind=EventKind.TENANT_CHANGED,
        at=T0 + 600,
        tenant=tenant.id,
        by="cli:ops",
        stage="admin",
        before=tenant_admin.audit_bytes(before),
        after=tenant_admin.audit_bytes(tenant),
    )


def test_counts_per_tenant_domain_and_provider() -> None:
    reputations = engine()
    outcome = batch(reputations, sent(10, bounced=1) + sent(5, sender="app@news.shop.test"))
    tenant = total(record(reputations, "tenant|shop").buckets)
    assert (tenant.sent, tenant.delivered, tenant.hard_bounces) == (15, 14, 1)
    assert total(record(reputations, "domain|shop|shop.test").buckets).sent == 10
    assert total(record(reputations, "domain|shop|news.shop.test").buckets).sent == 5
    assert total(record(reputations, "provider|shop|google").buckets).hard_bounces == 1
    keys = sorted(r.key.decode() for r in outcome.records if r.topic == REPUTATION.name and r.key)
    assert keys == [
        "domain|shop|news.shop.test",
        "domain|shop|shop.test",
        "provider|shop|google",
        "tenant|shop",
    ]
    assert decisions(outcome) == []  # 15 < min_messages: no rate counts yet


def test_a_tenant_past_the_pause_level_is_paused_with_the_figures() -> None:
    reputations = engine()
    outcome = batch(reputations, sent(100, bounced=15))
    why = "hard bounce rate 15.0% over 24h (15 of 100)"
    assert outcome.pauses == [Pause("shop", "", why)]
    # The tenant's pause covers its domain (warned, not paused: one resume suffices); one
    # provider's rates are a warning only.
    assert sorted(decisions(outcome)) == [
        ("domain", "warning"),
        ("provider", "warning"),
        ("tenant", "paused"),
    ]
    paused = next(e for e in outcome.decisions if e.classification == "paused")
    assert paused.detail == why and paused.tenant == "shop" and paused.stage == "reputation"
    assert paused.figures["hard_bounces"] == 15 and paused.figures["bounce_rate"] == 0.15
    assert paused.at == T0 + 99 * 0.001  # the newest event time, not the wall clock
    assert record(reputations, "tenant|shop").level == "paused"
    events = [EVENTS.decode(r.value) for r in outcome.records if r.topic == EVENTS.name and r.value]
    assert [e.kind for e in events] == [EventKind.REPUTATION] * 3
    # More mail changes nothing: paused until an operator resumes.
    assert batch(reputations, sent(100, at=T0 + 60)).pauses == []


def test_only_the_bad_domain_is_paused() -> None:
    reputations = engine()
    outcome = batch(
        reputations,
        sent(100, bounced=20, sender="app@news.shop.test") + sent(150, at=T0 + 1),
    )
    assert outcome.pauses == [
        Pause("shop", "news.shop.test", "hard bounce rate 20.0% over 24h (20 of 100)")
    ]
    assert record(reputations, "tenant|shop").level == "warning"  # 8%: warning only


def test_a_tenant_without_a_record_is_warned_never_paused() -> None:
    reputations = engine(tenants=())
    outcome = batch(reputations, sent(100, bounced=50, tenant="default"))
    assert outcome.pauses == []
    assert record(reputations, "tenant|default").level == "warning"


def test_a_resume_starts_the_window_afresh_and_recovers() -> None:
    reputations = engine()
    batch(reputations, sent(100, bounced=15))
    outcome = batch(reputations, [resumed(SHOP)])
    assert decisions(outcome) == [("tenant", "recovered")]
    assert outcome.decisions[0].detail == "resumed by cli:ops"
    for key in ("tenant|shop", "domain|shop|shop.test", "provider|shop|google"):
        after = reputations.table.get(key)
        assert after is None or (after.level == "ok" and total(after.buckets).sent == 0), key
    # The next bounces count in a fresh window: 2 of 30 is under the pause level.
    assert batch(reputations, sent(30, bounced=2, at=T0 + 700)).pauses == []


def test_a_domain_resume_recovers_that_domain_only() -> None:
    reputations = engine()
    batch(reputations, sent(100, bounced=20, sender="app@news.shop.test") + sent(150, at=T0 + 1))
    outcome = batch(reputations, [resumed(SHOP, domain="news.shop.test")])
    assert decisions(outcome) == [("domain", "recovered")]
    assert record(reputations, "tenant|shop").level == "warning"


def test_an_operators_resume_of_a_pause_not_ours_changes_nothing() -> None:
    reputations = engine()
    batch(reputations, sent(30))
    outcome = batch(reputations, [resumed(SHOP)])
    assert outcome.decisions == [] and total(record(reputations, "tenant|shop").buckets).sent == 30


def test_a_removed_tenant_leaves_the_topic() -> None:
    reputations = engine()
    batch(reputations, sent(5))
    removal = Event(
        kind=EventKind.TENANT_CHANGED,
        at=T0 + 5,
        tenant="shop",
        before=tenant_admin.audit_bytes(SHOP),
        after=b"",
    )
    outcome = batch(reputations, [removal])
    tombstones = sorted(r.key.decode() for r in outcome.records if r.value is None and r.key)
    assert tombstones == [
        "domain|shop|shop.test",
        "provider|shop|google",
        "tenant|shop",
    ]


def test_the_window_slides_with_event_time() -> None:
    reputations = engine()
    batch(reputations, sent(100, bounced=9) + sent(5, sender="a@news.shop.test"))  # 8.6%
    assert record(reputations, "tenant|shop").level == "warning"
    later = batch(reputations, sent(50, at=T0 + 25 * HOUR))
    assert ("tenant", "recovered") in decisions(later)
    # A scope with nothing left in its window leaves the topic (a tombstone).
    assert reputations.table.get("domain|shop|news.shop.test") is None
    assert any(r.key == b"domain|shop|news.shop.test" and r.value is None for r in later.records)
    assert total(record(reputations, "tenant|shop").buckets).sent == 50
    # An event older than the window no longer counts.
    batch(reputations, sent(5, bounced=5, at=T0))
    assert total(record(reputations, "tenant|shop").buckets).hard_bounces == 0


def test_a_discarded_batch_is_not_counted_twice() -> None:
    reputations = engine()
    events = sent(30, bounced=3)
    failed = batch(reputations, events, commit=False)
    assert failed.records
    reputations.discarded()
    batch(reputations, events)
    assert total(record(reputations, "tenant|shop").buckets).sent == 30


def test_a_restart_resumes_from_the_records() -> None:
    first = engine()
    published: dict[str, Reputation] = {}
    for chunk in (sent(60, bounced=3), sent(60, bounced=3, at=T0 + HOUR)):
        for out in batch(first, chunk).records:
            if out.topic == REPUTATION.name and out.key is not None:
                if out.value is None:
                    published.pop(out.key.decode(), None)
                else:
                    published[out.key.decode()] = REPUTATION.decode(out.value)
    second = engine()
    second.load(published)
    rest = sent(60, bounced=20, at=T0 + 2 * HOUR)
    pauses = batch(second, rest).pauses
    assert pauses == batch(first, rest).pauses
    assert pauses == [Pause("shop", "", "hard bounce rate 14.4% over 24h (26 of 180)")]
    assert record(second, "tenant|shop") == record(first, "tenant|shop")
    assert total(record(second, "tenant|shop").buckets).sent == 180


def test_a_warming_address_counts_its_days_and_steps() -> None:
    warming = {"192.0.2.10": PoolAddress(address="192.0.2.10", warmup=True)}
    config = WarmupConfig(schedule=(10, 20, 40))
    reputations = engine(warming=warming, warmup_config=config)
    day1 = DAY * (int(T0 // DAY) + 1)
    batch(reputations, sent(8, at=day1, source="192.0.2.10") + sent(3, at=day1 + 1))
    state = record(reputations, "address|192.0.2.10|google").warmup
    assert state is not None and (state.sent, state.step, state.allowance) == (8, 0, 10)
    outcome = batch(reputations, sent(1, at=day1 + DAY, source="192.0.2.10"))
    assert decisions(outcome) == [("address", "warmup_advanced")]
    assert outcome.decisions[0].source == "192.0.2.10"
    state = record(reputations, "address|192.0.2.10|google").warmup
    assert state is not None and (state.step, state.allowance, state.sent) == (1, 20, 1)
    # A late attempt of the judged day changes nothing.
    batch(reputations, sent(1, at=day1 + 5, source="192.0.2.10"))
    state = record(reputations, "address|192.0.2.10|google").warmup
    assert state is not None and state.sent == 1


def test_an_operators_clock_does_not_move_the_window() -> None:
    reputations = engine()
    batch(reputations, sent(30))
    late = msgspec.structs.replace(resumed(SHOP), at=T0 + 10 * DAY)  # a laptop's clock
    batch(reputations, [late, *sent(1, at=T0 + 60)])
    assert reputations.table.clock == T0 + 60
    assert total(record(reputations, "tenant|shop").buckets).sent == 31

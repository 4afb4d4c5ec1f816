"""Today's warm-up allowance of a source address: the reputation stage's state, this process's
own count, a day not rolled over yet, a warm address, give-backs (pure: no clock)."""

from __future__ import annotations

from services.deliverer.warmup import Reservation, WarmupLedger, next_midnight
from shared.pools import WarmupConfig, warmup_key
from shared.reputation import DAY, day_of
from shared.wire.records import Reputation, WarmupState
from shared.wire.topics import REPUTATION

TODAY = 20_000
NOON = TODAY * DAY + 12 * 3600.0
SCHEDULE = WarmupConfig(schedule=(10, 20, 40))


def published(ledger: WarmupLedger, address: str, provider: str, state: WarmupState) -> None:
    record = Reputation(
        key=warmup_key(address, provider),
        scope="address",
        address=address,
        provider=provider,
        warmup=state,
    )
    ledger.apply(REPUTATION.key(record), REPUTATION.encode(record))


def test_days_and_midnight() -> None:
    assert day_of(NOON) == TODAY
    assert next_midnight(NOON) == (TODAY + 1) * DAY
    assert next_midnight(TODAY * DAY) == (TODAY + 1) * DAY  # midnight itself starts a day


def test_no_state_is_the_first_step() -> None:
    ledger = WarmupLedger(SCHEDULE)
    allowance = ledger.allowance("192.0.2.1", "google", NOON)
    assert allowance is not None
    assert (allowance.allowance, allowance.sent, allowance.left) == (10, 0, 10)


def test_todays_state_and_the_larger_count() -> None:
    ledger = WarmupLedger(SCHEDULE)
    published(ledger, "192.0.2.1", "google", WarmupState(step=1, day=TODAY, allowance=20, sent=7))
    ledger.take("192.0.2.1", "google", 3, NOON)
    allowance = ledger.allowance("192.0.2.1", "google", NOON)
    assert allowance is not None and (allowance.sent, allowance.left) == (7, 13)
    ledger.take("192.0.2.1", "google", 6, NOON)  # our own 9 now exceed the state's 7
    allowance = ledger.allowance("192.0.2.1", "google", NOON)
    assert allowance is not None and (allowance.sent, allowance.left) == (9, 11)
    other = ledger.allowance("192.0.2.1", "microsoft", NOON)  # per provider
    assert other is not None and other.left == 10


def test_a_day_not_rolled_over_keeps_its_allowance_with_nothing_sent() -> None:
    ledger = WarmupLedger(SCHEDULE)
    state = WarmupState(step=2, day=TODAY - 1, allowance=40, sent=40)
    published(ledger, "192.0.2.1", "google", state)
    ledger.take("192.0.2.1", "google", 5, NOON - DAY)  # yesterday's own count: forgotten
    allowance = ledger.allowance("192.0.2.1", "google", NOON)
    assert allowance is not None and (allowance.allowance, allowance.sent) == (40, 0)


def test_warm_addresses_have_no_allowance() -> None:
    ledger = WarmupLedger(SCHEDULE)
    published(ledger, "192.0.2.1", "google", WarmupState(step=3, day=TODAY, health="warm"))
    published(ledger, "192.0.2.2", "google", WarmupState(step=3, day=TODAY, allowance=5))
    assert ledger.allowance("192.0.2.1", "google", NOON) is None
    assert ledger.allowance("192.0.2.2", "google", NOON) is None  # past the schedule


def test_give_back_only_on_the_same_day() -> None:
    ledger = WarmupLedger(SCHEDULE)
    first = ledger.take("192.0.2.1", "google", 4, NOON)
    assert first == Reservation("192.0.2.1", "google", 4, TODAY)
    ledger.give_back(first)
    assert ledger.own("192.0.2.1", "google", TODAY) == 0
    ledger.take("192.0.2.1", "google", 2, NOON + DAY)
    ledger.give_back(first)  # yesterday's reservation: today's count stays
    assert ledger.own("192.0.2.1", "google", TODAY + 1) == 2


def test_only_address_states_are_kept_and_tombstones_remove() -> None:
    ledger = WarmupLedger(SCHEDULE)
    tenant = Reputation(key="tenant|acme", scope="tenant", tenant="acme")
    ledger.apply(REPUTATION.key(tenant), REPUTATION.encode(tenant))
    ledger.apply(b"address|192.0.2.1|google", b"\xc1 not msgpack")  # kept as it was: none
    state = WarmupState(day=TODAY, allowance=10, sent=1)
    published(ledger, "2001:db8::1", "google", state)
    assert ledger.state("2001:db8::1", "google") == state
    assert list(ledger.seen(NOON)) == [("2001:db8::1", "google")]
    ledger.apply(warmup_key("2001:db8::1", "google").encode(), None)
    assert ledger.state("2001:db8::1", "google") is None

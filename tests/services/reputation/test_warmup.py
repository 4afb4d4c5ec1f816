"""A warming address's days: counted attempts, advance, hold, step back, warm."""

from __future__ import annotations

from services.reputation import warmup
from shared.pools import WarmupConfig
from shared.reputation import DAY, sent_today, stuck
from shared.wire.records import WarmupState

CONFIG = WarmupConfig(schedule=(50, 100, 500))
DAY0 = 20_000  # a UTC day number: the tests never read the wall clock


def day(state: WarmupState, **outcomes: int) -> WarmupState:
    for outcome, times in outcomes.items():
        for _ in range(times):
            state = warmup.count(state, outcome)
    return state


def test_a_new_address_starts_at_the_first_step() -> None:
    state = warmup.begin(DAY0, DAY0 * DAY + 10, CONFIG)
    assert (state.step, state.allowance, state.day, state.started_day) == (0, 50, DAY0, DAY0)
    assert state.health == "advancing"


def test_attempts_bounces_deferrals_and_complaints_are_counted() -> None:
    state = day(
        warmup.begin(DAY0, 0, CONFIG), delivered=3, bounced=1, failed=1, deferred=2, complained=1
    )
    assert (state.sent, state.bounced, state.deferred, state.complained) == (7, 1, 2, 1)


def test_a_healthy_well_used_day_advances() -> None:
    state = day(warmup.begin(DAY0, 0, CONFIG), delivered=40)
    rolled, judged = warmup.roll(state, DAY0 + 1, (DAY0 + 1) * DAY, CONFIG)
    assert judged is not None and judged.decision == "warmup_advanced"
    assert (rolled.step, rolled.allowance, rolled.sent, rolled.day) == (1, 100, 0, DAY0 + 1)
    assert rolled.changed_at == (DAY0 + 1) * DAY
    assert judged.figures["sent"] == 40 and judged.figures["next_allowance"] == 100


def test_a_quiet_day_holds() -> None:
    state = day(warmup.begin(DAY0, 0, CONFIG), delivered=10)  # 20% of 50 < min_use 50%
    rolled, judged = warmup.roll(state, DAY0 + 1, 0, CONFIG)
    assert judged is not None and judged.decision == "warmup_held"
    assert (rolled.step, rolled.health, rolled.changed_at) == (0, "holding", 0)


def test_bounces_or_deferrals_step_back() -> None:
    state = warmup.roll(day(warmup.begin(DAY0, 0, CONFIG), delivered=50), DAY0 + 1, 0, CONFIG)[0]
    state = day(state, delivered=80, bounced=10)  # 11% bounces: over back_bounce_rate 5%
    rolled, judged = warmup.roll(state, DAY0 + 2, 0, CONFIG)
    assert judged is not None and judged.decision == "warmup_stepped_back"
    assert (rolled.step, rolled.allowance, rolled.health) == (0, 50, "stepping_back")
    deferring = day(rolled, delivered=30, deferred=20)  # 40% deferred: over 30%
    assert warmup.roll(deferring, DAY0 + 3, 0, CONFIG)[0].step == 0  # never below step 0


def test_past_the_last_step_the_address_is_warm() -> None:
    state = warmup.begin(DAY0, 0, CONFIG)
    for n in range(3):
        state = day(state, delivered=state.allowance)
        state, _ = warmup.roll(state, DAY0 + n + 1, 0, CONFIG)
    assert (state.step, state.health, state.allowance) == (3, "warm", 0)
    state = day(state, delivered=5000, bounced=5000)
    rolled, judged = warmup.roll(state, DAY0 + 9, 0, CONFIG)
    assert judged is None and rolled.health == "warm" and rolled.sent == 0


def test_sent_today_and_stuck() -> None:
    state = day(warmup.begin(DAY0, DAY0 * DAY, CONFIG), delivered=3)
    assert sent_today(state, DAY0) == 3 and sent_today(state, DAY0 + 1) == 0
    assert not stuck(state, DAY0 + 6, 7)
    assert stuck(state, DAY0 + 7, 7)

"""The arithmetic the reputation thresholds are compared with (``shared.reputation``): every
count summed, each rate over its own denominator, the words of a decision, a warming
address's day. ``levels.judge`` compares these rates with the thresholds; a rate off here
pauses a tenant that is fine or keeps sending for one that is not."""

from __future__ import annotations

import pytest

from shared.reputation import (
    Rates,
    credential_key,
    day_of,
    describe,
    figures,
    percent,
    plus,
    sent_today,
    stuck,
    total,
)
from shared.wire.records import ReputationBucket, ReputationCounts, WarmupState

A = ReputationCounts(
    sent=100,
    delivered=90,
    hard_bounces=6,
    soft_bounces=4,
    blocks=3,
    complaints=2,
    unsubscribes=5,
    deferred=7,
)
B = ReputationCounts(
    sent=10,
    delivered=8,
    hard_bounces=1,
    soft_bounces=1,
    blocks=1,
    complaints=1,
    unsubscribes=1,
    deferred=1,
)
A_PLUS_B = ReputationCounts(
    sent=110,
    delivered=98,
    hard_bounces=7,
    soft_bounces=5,
    blocks=4,
    complaints=3,
    unsubscribes=6,
    deferred=8,
)


def test_a_credentials_record_key() -> None:
    assert credential_key("app@shop.example") == "credential|app@shop.example"


def test_every_count_is_summed() -> None:
    assert plus(A, B) == A_PLUS_B
    assert total([ReputationBucket(hour=1, counts=A), ReputationBucket(hour=2, counts=B)]) == (
        A_PLUS_B
    )
    assert total([]) == ReputationCounts()


@pytest.mark.parametrize(
    ("counts", "rates"),
    [
        # Each rate over its own denominator: complaints over what was delivered.
        (A, Rates(bounce=0.06, complaint=2 / 90, block=0.03)),
        # One message is a window too (a tenant's first send, min_messages = 1).
        (
            ReputationCounts(sent=1, delivered=1, hard_bounces=1, complaints=1, blocks=1),
            Rates(1.0, 1.0, 1.0),
        ),
        # Nothing delivered yet: no complaint rate, while the bounce rate counts.
        (ReputationCounts(sent=4, hard_bounces=2, complaints=1), Rates(0.5, 0.0, 0.0)),
        (ReputationCounts(complaints=3, hard_bounces=1), Rates(0.0, 0.0, 0.0)),
    ],
)
def test_rates(counts: ReputationCounts, rates: Rates) -> None:
    assert Rates.of(counts) == rates


def test_a_decisions_figures_are_every_count_its_rates_and_the_window() -> None:
    assert figures(A, 24) == {
        "sent": 100.0,
        "delivered": 90.0,
        "hard_bounces": 6.0,
        "soft_bounces": 4.0,
        "blocks": 3.0,
        "complaints": 2.0,
        "unsubscribes": 5.0,
        "deferred": 7.0,
        "bounce_rate": 0.06,
        "complaint_rate": 2 / 90,
        "block_rate": 0.03,
        "window_hours": 24.0,
    }


@pytest.mark.parametrize(
    ("rate", "words"),
    [
        (0.0, "0.0%"),
        (0.0001, "0.01%"),
        (0.0035, "0.35%"),
        (0.00999, "1.00%"),  # under 1%: two decimals
        (0.01, "1.0%"),  # from 1%: one
        (0.142, "14.2%"),
        (1.0, "100.0%"),
    ],
)
def test_percent(rate: float, words: str) -> None:
    assert percent(rate) == words


def test_each_rate_in_words_names_its_counts() -> None:
    assert describe("bounce", A, 24) == "hard bounce rate 6.0% over 24h (6 of 100)"
    assert describe("complaint", A, 48) == "complaint rate 2.2% over 48h (2 of 90)"
    assert describe("block", A, 24) == "block rate 3.0% over 24h (3 of 100)"


def test_day_of_is_the_utc_day_number() -> None:
    assert day_of(0) == 0
    assert day_of(86_399.9) == 0
    assert day_of(86_400) == 1
    assert day_of(1_780_000_000) == 20_601  # 2026-05-28 UTC


def test_sent_today_counts_only_the_current_day() -> None:
    state = WarmupState(day=20_601, sent=40)
    assert sent_today(state, 20_601) == 40
    assert sent_today(state, 20_602) == 0  # the stage rolls the day over at its first send


@pytest.mark.parametrize(
    ("health", "changed_day", "today", "is_stuck"),
    [
        ("holding", 100, 103, True),  # exactly stuck_after_days without a change
        ("holding", 100, 102, False),
        ("advancing", 100, 110, True),
        ("stepping_back", 100, 100, False),
        ("warm", 100, 110, False),  # done warming: never stuck
    ],
)
def test_a_warming_address_is_stuck_after_days_without_a_change(
    health: str, changed_day: int, today: int, is_stuck: bool
) -> None:
    state = WarmupState(health=health, changed_at=changed_day * 86_400.0 + 3600)
    assert stuck(state, today, 3) is is_stuck

"""Reading reputation records: keys, totals, rates and the words a pause is given."""

from __future__ import annotations

from shared.reputation import (
    Rates,
    describe,
    domain_key,
    figures,
    percent,
    provider_key,
    tenant_key,
    total,
)
from shared.wire.records import ReputationBucket, ReputationCounts


def test_keys_are_the_records_contract() -> None:
    assert tenant_key("shop") == "tenant|shop"
    assert domain_key("shop", "shop.test") == "domain|shop|shop.test"
    assert provider_key("shop", "google") == "provider|shop|google"


def test_totals_and_rates() -> None:
    buckets = [
        ReputationBucket(hour=1, counts=ReputationCounts(sent=300, delivered=280, hard_bounces=20)),
        ReputationBucket(hour=2, counts=ReputationCounts(sent=200, delivered=180, blocks=20)),
        ReputationBucket(hour=3, counts=ReputationCounts(complaints=1)),
    ]
    counts = total(buckets)
    assert (counts.sent, counts.delivered, counts.complaints) == (500, 460, 1)
    assert Rates.of(counts) == Rates(bounce=20 / 500, complaint=1 / 460, block=20 / 500)
    assert Rates.of(ReputationCounts()) == Rates(0.0, 0.0, 0.0)
    numbers = figures(counts, 24)
    assert numbers["sent"] == 500 and numbers["window_hours"] == 24
    assert numbers["bounce_rate"] == 0.04


def test_the_words_of_a_decision() -> None:
    counts = ReputationCounts(sent=500, delivered=429, hard_bounces=71, complaints=3)
    assert describe("bounce", counts, 24) == "hard bounce rate 14.2% over 24h (71 of 500)"
    assert describe("complaint", counts, 24) == "complaint rate 0.70% over 24h (3 of 429)"
    assert (percent(0.0), percent(0.0035), percent(0.1)) == ("0.0%", "0.35%", "10.0%")

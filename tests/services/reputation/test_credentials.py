"""Compromised-account statistics as pure functions: each signal holds a credential, a
steady or a weekly sender is never held, a new credential only at the absolute limits."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from services.reputation import credentials
from services.reputation.config import CredentialsConfig
from services.reputation.credentials import Sent, count, judge
from shared.wire.records import CredentialWindow

CONFIG = CredentialsConfig()  # hourly buckets, a week of baseline, the shipped factors
NOW = 500_000  # the current bucket's index (event times are never the wall clock's)


def message(recipients: int = 1, domains: Iterable[str] = ("dest.test",)) -> Sent:
    return Sent(messages=1, recipients=recipients, domains=tuple(domains))


def history(per_bucket: Iterable[tuple[int, Sent, int]]) -> CredentialWindow:
    """A window from (bucket index, what, how many times)."""
    window = credentials.empty(CONFIG.bucket)
    for index, sent, times in per_bucket:
        for _ in range(times):
            window = count(window, index, sent)
    return window


def steady(buckets: int, per_bucket: int, until: int = NOW) -> list[tuple[int, Sent, int]]:
    """``per_bucket`` one-recipient messages in each of the ``buckets`` before ``until``."""
    return [(until - b, message(), per_bucket) for b in range(buckets, 0, -1)]


def test_fifty_times_the_baseline_is_held_with_the_figures() -> None:
    window = history([*steady(24, 10), (NOW, message(), 500)])
    hold = judge(window, NOW, CONFIG)
    assert hold is not None and hold.signals == (credentials.VOLUME,)
    assert hold.figures["messages"] == 500 and hold.figures["baseline_messages"] == 10
    assert (
        hold.why
        == "messages 500 this 1h, 50.0x its baseline of 10.0 (mean of 24 active 1h buckets)"
    )


def test_a_steady_credential_is_never_held() -> None:
    window = credentials.empty(CONFIG.bucket)
    for index in range(NOW - 200, NOW + 1):
        for n in range(40 + index % 7):  # some variation, far from 10x
            window = count(window, index, message(recipients=1 + n % 3, domains=[f"d{n}.test"]))
        window = credentials.prune(window, index, CONFIG.baseline_buckets)
        assert judge(window, index, CONFIG) is None, index


def test_a_small_rise_under_the_minimum_is_not_held() -> None:
    # 2 messages yesterday, 20 today: 10x, but under min_messages.
    window = history([(NOW - 24, message(), 2), (NOW, message(), 20)])
    assert judge(window, NOW, CONFIG) is None


def test_a_new_credential_is_held_only_at_the_absolute_limit() -> None:
    under = history([(NOW, message(), 499)])
    assert judge(under, NOW, CONFIG) is None  # no baseline: 10 x min_messages = 500
    over = judge(history([(NOW, message(), 500)]), NOW, CONFIG)
    assert over is not None and over.signals == (credentials.VOLUME,)
    assert over.figures["baseline_buckets"] == 0
    assert "no baseline yet: the absolute limit 500" in over.why


def test_quiet_buckets_are_not_in_the_baseline() -> None:
    # A weekly newsletter of 1000: compared with last week's send, not with a weekly mean.
    window = history([(NOW - 168, message(), 1000), (NOW, message(), 1000)])
    assert judge(window, NOW, CONFIG) is None


def test_more_recipients_per_message_is_held() -> None:
    window = history([*steady(10, 60), (NOW, message(recipients=10), 60)])
    hold = judge(window, NOW, CONFIG)
    assert hold is not None and hold.signals == (credentials.RECIPIENTS,)
    assert hold.figures["recipients_per_message"] == 10.0
    assert hold.figures["baseline_recipients_per_message"] == 1.0


def test_many_more_recipient_domains_is_held() -> None:
    before = [  # oldest first: domains are told apart in the newest bucket only
        (NOW - b, message(domains=[f"d{n % 3}.test"]), 1)
        for b in range(10, 0, -1)
        for n in range(60)
    ]
    now = [(NOW, message(domains=[f"d{n}.test"]), 1) for n in range(60)]
    hold = judge(history([*before, *now]), NOW, CONFIG)
    assert hold is not None and hold.signals == (credentials.DOMAINS,)
    assert (hold.figures["domains"], hold.figures["baseline_domains"]) == (60, 3)


def test_spam_verdicts_over_the_share_are_held() -> None:
    verdicts = [(NOW, Sent(scanned=1, spam=1), 6), (NOW, Sent(scanned=1), 14)]
    hold = judge(history([*steady(5, 20), (NOW, message(), 20), *verdicts]), NOW, CONFIG)
    assert hold is not None and hold.signals == (credentials.SPAM,)
    assert hold.figures["spam_share"] == pytest.approx(0.3)


def test_too_few_spam_verdicts_hold_nothing() -> None:
    verdicts = [(NOW, Sent(scanned=1, spam=1), 19)]  # under share_min_messages
    assert judge(history([*steady(5, 20), (NOW, message(), 20), *verdicts]), NOW, CONFIG) is None


def test_hard_bounces_over_the_share_are_held() -> None:
    bounces = [(NOW, Sent(hard_bounces=1), 5)]
    hold = judge(history([*steady(5, 20), (NOW, message(), 20), *bounces]), NOW, CONFIG)
    assert hold is not None and hold.signals == (credentials.HARD_BOUNCES,)
    assert (
        judge(
            history([*steady(5, 20), (NOW, message(), 20), (NOW, Sent(hard_bounces=1), 3)]),
            NOW,
            CONFIG,
        )
        is None
    )


def test_distinct_domains_counted_once_and_only_in_the_newest_bucket() -> None:
    window = history([(NOW, message(domains=["a.test", "b.test"]), 3)])
    assert window.buckets[-1].domains == 2
    late = count(window, NOW - 1, message(domains=["c.test"]))
    assert [(b.index, b.domains, b.messages) for b in late.buckets] == [
        (NOW - 1, 0, 1),
        (NOW, 2, 3),
    ]
    moved = count(late, NOW + 1, message(domains=["z.test"]))
    assert moved.newest_domains == ("z.test",) and moved.buckets[-1].domains == 1


def test_pruning_keeps_the_baseline_and_a_release_restarts_the_current_bucket() -> None:
    window = history([(NOW - 200, message(), 1), *steady(3, 10), (NOW, message(), 500)])
    pruned = credentials.prune(window, NOW, CONFIG.baseline_buckets)
    assert [b.index for b in pruned.buckets] == [NOW - 3, NOW - 2, NOW - 1, NOW]
    held = judge(pruned, NOW, CONFIG)
    assert held is not None
    released = credentials.restart(pruned, NOW)
    assert [b.index for b in released.buckets] == [NOW - 3, NOW - 2, NOW - 1]
    assert not released.held and judge(released, NOW, CONFIG) is None


def test_owners_are_bounded() -> None:
    owners = credentials.Owners(2)
    for n in range(3):
        owners.remember(f"m{n}", f"user{n}")
    assert owners.lookup("m0") is None and owners.lookup("m2") == "user2"

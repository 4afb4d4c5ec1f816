"""The timing rules for machine clicks: early clicks and bursts (times given, no clock)."""

from __future__ import annotations

import pytest

from services.bouncer.tracking.machine import ClickBursts, early_click

SENT = 1_800_000_000
KEY = ("0123456789abcdef0123456789abcdef", "reader@customer.example")
OTHER = ("0123456789abcdef0123456789abcdef", "someone@customer.example")


@pytest.mark.parametrize(
    ("at", "min_delay", "early"),
    [
        (SENT + 0.5, 10.0, True),  # a gateway checking links as the message passes
        (SENT + 9.99, 10.0, True),
        (SENT + 10.0, 10.0, False),
        (SENT + 3600, 10.0, False),  # a person, an hour later
        (SENT - 2.0, 10.0, True),  # clocks a little apart: still early
        (SENT + 0.5, 0.0, False),  # the rule is off
    ],
)
def test_early_click(at: float, min_delay: float, early: bool) -> None:
    assert early_click(at, SENT, min_delay) is early


def bursts(links: int = 3, window: float = 2.0, capacity: int = 100) -> ClickBursts:
    return ClickBursts(links, window, capacity)


def test_three_links_within_the_window_are_a_burst_all_of_them() -> None:
    seen = bursts()
    for at, link in ((100.0, 1), (100.4, 2), (101.1, 3)):
        seen.add(KEY, at, link)
    assert [seen.in_burst(KEY, at) for at in (100.0, 100.4, 101.1)] == [True, True, True]


def test_a_person_clicking_links_minutes_apart_is_no_burst() -> None:
    seen = bursts()
    for at, link in ((100.0, 1), (160.0, 2), (400.0, 3)):
        seen.add(KEY, at, link)
    assert not any(seen.in_burst(KEY, at) for at in (100.0, 160.0, 400.0))


def test_the_same_link_clicked_again_is_not_a_burst() -> None:
    seen = bursts()
    for at in (100.0, 100.2, 100.4, 100.6):  # a double (quadruple) click
        seen.add(KEY, at, 1)
    seen.add(KEY, 100.8, 2)
    assert not seen.in_burst(KEY, 100.0)


def test_links_spread_wider_than_the_window_are_no_burst() -> None:
    seen = bursts()
    for at, link in ((100.0, 1), (101.5, 2), (103.0, 3)):  # 3 links over 3 s, window 2 s
        seen.add(KEY, at, link)
    assert not any(seen.in_burst(KEY, at) for at in (100.0, 101.5, 103.0))


def test_a_click_outside_the_burst_span_stays_human() -> None:
    seen = bursts()
    seen.add(KEY, 90.0, 4)  # earlier, on its own
    for at, link in ((100.0, 1), (100.4, 2), (101.1, 3)):
        seen.add(KEY, at, link)
    assert not seen.in_burst(KEY, 90.0)
    assert seen.in_burst(KEY, 100.0)


def test_recipients_of_one_message_are_apart() -> None:
    seen = bursts()
    seen.add(KEY, 100.0, 1)
    seen.add(OTHER, 100.1, 2)
    seen.add(KEY, 100.2, 3)
    assert not seen.in_burst(KEY, 100.0)


def test_memory_is_bounded_least_recently_clicked_forgotten() -> None:
    seen = bursts(capacity=2)
    third = ("fedcba9876543210fedcba9876543210", "x@customer.example")
    seen.add(KEY, 100.0, 1)
    seen.add(KEY, 100.1, 2)
    seen.add(OTHER, 100.2, 1)
    seen.add(third, 100.3, 1)  # KEY was clicked least recently: forgotten
    assert len(seen) == 2
    seen.add(KEY, 100.4, 3)
    assert not seen.in_burst(KEY, 100.4)  # its first two clicks are gone


def test_clicks_per_message_are_bounded() -> None:
    seen = bursts(window=60.0)
    for i in range(500):  # a scanner following 500 links
        seen.add(KEY, 100.0 + i * 0.01, i)
    assert seen.in_burst(KEY, 100.0 + 499 * 0.01)
    assert len(seen._recent[KEY]) == 6  # 2 * links


def test_messages_clicked_two_windows_ago_are_forgotten() -> None:
    seen = bursts(window=2.0)
    seen.add(KEY, 100.0, 1)
    seen.add(OTHER, 103.0, 1)
    assert len(seen) == 2  # KEY's click may still be checked (until 102.0) against OTHER's
    seen.add(OTHER, 104.5, 2)  # past 100.0 + 2 windows: nothing needs KEY any more
    assert list(seen._recent) == [OTHER]


def test_a_zero_window_turns_it_off() -> None:
    seen = bursts(window=0.0)
    assert not seen.enabled
    for at, link in ((100.0, 1), (100.0, 2), (100.0, 3)):
        seen.add(KEY, at, link)
    assert len(seen) == 0 and not seen.in_burst(KEY, 100.0)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="links"):
        ClickBursts(1, 2.0, 10)

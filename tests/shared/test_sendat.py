"""Send-at: the header's forms, the bounds, and how a long wait is cut into passes over the
retry tiers (pure logic; every time is relative to a fixed ``NOW``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared import sendat

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC).timestamp()
TIERS = sendat.tier_lengths(("5m", "1m", "6h", "30m", "2h"))


def test_the_header_is_a_delay_in_seconds_or_an_rfc_3339_time() -> None:
    assert sendat.parse_header(" 3600 ", NOW) == NOW + 3600
    assert sendat.parse_header("90.5", NOW) == NOW + 90.5
    assert sendat.parse_header("2030-06-01T14:00:00+02:00", NOW) == NOW
    assert sendat.parse_header("2030-06-01T13:00:00Z", NOW) == NOW + 3600
    assert sendat.parse_header("2030-06-01t13:00:00z", NOW) == NOW + 3600
    for bad in ("tomorrow", "2030-06-01", "-5", "1e5", "2030-13-01T00:00:00Z"):
        with pytest.raises(sendat.SendAtError, match="neither an RFC 3339"):
            sendat.parse_header(bad, NOW)
    with pytest.raises(sendat.SendAtError, match="time zone offset"):
        sendat.parse_header("2030-06-01T13:00:00", NOW)


def test_an_aware_time_is_required() -> None:
    when = datetime(2030, 6, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert sendat.aware_timestamp(when) == NOW
    with pytest.raises(sendat.SendAtError):
        sendat.aware_timestamp(datetime(2030, 6, 1, 12, 0))  # no offset: refused


def test_bounds_past_now_and_72_hours() -> None:
    assert sendat.check(NOW + 10, NOW) == NOW + 10
    assert sendat.check(NOW + sendat.MAX_AHEAD, NOW) == NOW + sendat.MAX_AHEAD
    assert sendat.check(NOW, NOW) == 0.0  # now is at once
    assert sendat.check(NOW - sendat.SKEW, NOW) == 0.0  # a client clock a little behind
    with pytest.raises(sendat.SendAtError, match="61s in the past"):
        sendat.check(NOW - sendat.SKEW - 1, NOW)
    with pytest.raises(sendat.SendAtError, match="more than 72h ahead"):
        sendat.check(NOW + sendat.MAX_AHEAD + 1, NOW)


def test_tiers_are_sorted_by_length() -> None:
    assert [name for _, name in TIERS] == ["1m", "5m", "30m", "2h", "6h"]


def test_a_pass_is_in_the_longest_tier_not_longer_than_what_remains() -> None:
    assert sendat.next_pass(TIERS, NOW, NOW + 20) == ("1m", NOW + 20)  # shortest, to the end
    assert sendat.next_pass(TIERS, NOW, NOW + 600) == ("5m", NOW + 300)
    assert sendat.next_pass(TIERS, NOW, NOW + 3 * 3600) == ("2h", NOW + 7200)
    assert sendat.next_pass(TIERS, NOW, NOW + 72 * 3600) == ("6h", NOW + 6 * 3600)
    assert sendat.next_pass(TIERS, NOW, NOW - 5) == ("1m", NOW)  # already due
    with pytest.raises(ValueError, match="no retry tiers"):
        sendat.next_pass([], NOW, NOW + 1)


def test_72_hours_of_passes_never_wait_past_the_send_at() -> None:
    at, send_at, passes = NOW, NOW + sendat.MAX_AHEAD, 0
    while at < send_at:
        tier, until = sendat.next_pass(TIERS, at, send_at)
        length = dict((name, seconds) for seconds, name in TIERS)[tier]
        assert at < until <= send_at and until - at <= length
        at, passes = until, passes + 1
    assert at == send_at and passes == 12  # twelve 6h passes

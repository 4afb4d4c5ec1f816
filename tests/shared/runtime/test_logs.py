"""Structured logs: one JSON object per line with the extra fields, or readable text."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from shared.config import Duration, LogConfig
from shared.runtime.logs import RepeatFilter, setup_logging


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


@pytest.mark.usefixtures("restore_root")
def test_json_line_has_standard_and_extra_fields() -> None:
    stream = io.StringIO()
    setup_logging(LogConfig(level="info", format="json"), stream)
    log = logging.getLogger("postline.ingest")
    log.info("queued %s", "msg", extra={"message_id": "abc123", "stage": "ingest"})
    log.debug("hidden at info level")
    (line,) = lines(stream)
    record = json.loads(line)
    assert record["level"] == "info"
    assert record["logger"] == "postline.ingest"
    assert record["event"] == "queued msg"
    assert record["message_id"] == "abc123" and record["stage"] == "ingest"
    assert record["ts"].endswith("Z")


@pytest.mark.usefixtures("restore_root")
def test_json_exception_and_unserialisable_values() -> None:
    stream = io.StringIO()
    setup_logging(LogConfig(level="debug", format="json"), stream)
    try:
        raise ValueError("bad value")
    except ValueError:
        logging.getLogger("x").exception("failed", extra={"obj": object(), "raw": b"\x00"})
    (line,) = [json.loads(raw) for raw in lines(stream) if raw.startswith("{")]
    assert "ValueError: bad value" in line["exc"]
    assert line["obj"].startswith("<object")


@pytest.mark.usefixtures("restore_root")
def test_text_format_and_no_duplicate_handlers() -> None:
    stream = io.StringIO()
    setup_logging(LogConfig(level="warning", format="text"), stream)
    setup_logging(LogConfig(level="warning", format="text"), stream)
    logging.getLogger("postline.deliverer").warning("deferred", extra={"domain": "example.com"})
    logging.getLogger("postline.deliverer").info("not shown")
    (line,) = lines(stream)
    assert "warning" in line and "postline.deliverer: deferred" in line
    assert "domain='example.com'" in line


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(msg: str = "fetch failed: %s", level: int = logging.ERROR, name: str = "x") -> Any:
    return logging.LogRecord(name, level, __file__, 1, msg, ("broker down",), None)


def test_repeats_pass_a_burst_then_one_line_per_interval_with_the_count() -> None:
    clock = FakeClock()
    limit = RepeatFilter(burst=3, interval=60.0, clock=clock)
    passed = []
    for _ in range(250):  # an outage: 250 identical errors, one every 0.5 s
        line = record()
        if limit.filter(line):
            passed.append((clock.now, getattr(line, "suppressed", 0)))
        clock.now += 0.5
    # 3 at once, then one per 60 s reporting what was dropped in between.
    assert passed == [(1000.0, 0), (1000.5, 0), (1001.0, 0), (1060.0, 117), (1120.0, 119)]


def test_kinds_are_counted_apart_and_info_is_never_dropped() -> None:
    clock = FakeClock()
    limit = RepeatFilter(burst=1, interval=60.0, clock=clock)
    assert limit.filter(record())
    assert not limit.filter(record())  # same logger, template and level
    assert limit.filter(record(level=logging.WARNING))
    assert limit.filter(record(name="other"))
    assert limit.filter(record(msg="commit failed: %s"))
    assert all(limit.filter(record(level=logging.INFO)) for _ in range(50))


def test_after_a_quiet_interval_a_new_burst_reports_what_was_dropped() -> None:
    clock = FakeClock()
    limit = RepeatFilter(burst=2, interval=10.0, clock=clock)
    assert [limit.filter(record()) for _ in range(5)] == [True, True, False, False, False]
    clock.now += 10.0
    first = record()
    assert limit.filter(first)
    assert first.suppressed == 3
    assert limit.filter(record())  # a fresh burst
    assert not limit.filter(record())


def test_burst_zero_turns_limiting_off() -> None:
    limit = RepeatFilter(burst=0, interval=60.0, clock=FakeClock())
    assert all(limit.filter(record()) for _ in range(100))


@pytest.mark.usefixtures("restore_root")
def test_setup_logging_installs_the_limit_from_the_config() -> None:
    stream = io.StringIO()
    setup_logging(LogConfig(repeat_burst=2, repeat_interval=Duration(3600)), stream)
    log = logging.getLogger("postline.signer")
    for attempt in range(10):
        log.error("fetch failed: %s", "broker down", extra={"attempt": attempt})
    log.info("still here")
    assert [json.loads(line)["event"] for line in lines(stream)] == [
        "fetch failed: broker down",
        "fetch failed: broker down",
        "still here",
    ]


def test_repeat_interval_is_bounded() -> None:
    with pytest.raises(ValueError, match="repeat_interval must be between"):
        LogConfig(repeat_interval=Duration(0))

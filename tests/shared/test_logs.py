"""Structured logs: one JSON object per line with the extra fields, or readable text."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from shared.config import LogConfig
from shared.logs import setup_logging


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

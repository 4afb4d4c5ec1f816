"""Structured logging: one JSON object per line on stderr (or plain text for a terminal).

Each line carries ``ts`` (RFC 3339, UTC), ``level``, ``logger`` and ``event`` (the log
message), plus every field passed through ``extra=`` (``message_id``, ``stage``, ``reason``...),
and ``exc`` with the traceback when one is logged.

Repeated warnings and errors are rate limited (:class:`RepeatFilter`): a broker outage used to
write thousands of identical lines per stage per minute. Lines of one kind (logger, message
template, level) pass ``log.repeat_burst`` times, then once per ``log.repeat_interval`` with a
``suppressed`` field counting the lines dropped since the previous one; debug and info lines
are never dropped.

This module owns the formatters, the filter and :func:`setup_logging`; the filter's counters
are its only state beyond the ``logging`` module's configuration. It does not redact: callers
must never pass secrets (passwords, AUTH credentials, DKIM private keys, message bodies) as
the message or as extra fields, because whatever is logged is written as is.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from shared.config import LogConfig

#: Attributes every ``logging.LogRecord`` has; anything else on a record came from ``extra=``.
_RESERVED = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)

#: The ``extra=`` key of a record's own readable rendering (the mail log's Postfix-style
#: line): the text format prints it instead of the ``key=value`` fields, and the JSON format
#: leaves it out, as it does every name starting with ``_``.
TEXT_LINE = "_text"

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller attached with ``extra=``, in the order given."""
    return {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}


def _timestamp(record: logging.LogRecord) -> str:
    stamp = datetime.fromtimestamp(record.created, UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line (values JSON cannot hold are written with ``str``)."""
        line: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Formats a record as ``ts level logger: event key=value ...`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one readable line (plus a traceback when one is logged)."""
        text = f"{_timestamp(record)} {record.levelname.lower():7} {record.name}: "
        own = getattr(record, TEXT_LINE, None)
        if isinstance(own, str):
            text += own
        else:
            fields = " ".join(f"{k}={v!r}" for k, v in extra_fields(record).items())
            text += record.getMessage() + (f" {fields}" if fields else "")
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


@dataclass
class _Repeats:
    """One kind of line: when its current period began, lines passed and dropped in it."""

    start: float
    last: float
    passed: int = 1
    suppressed: int = 0


class RepeatFilter(logging.Filter):
    """Let a burst of one kind of warning or error through, then one line per interval.

    The kind is (logger, message template, level): ``"fetch failed: %s"`` with a different
    error text is still the same kind. While lines of a kind keep coming less than
    ``interval`` apart, the first ``burst`` pass, then one per ``interval``, carrying
    ``suppressed=N`` (the lines dropped since the previous one). After a quiet ``interval``
    the kind starts over with a new burst (its next line still reports what was dropped).
    ``clock`` is injectable for tests (``time.monotonic`` by default).
    """

    #: Kinds remembered at most (they come from code, so a few hundred in practice).
    MAX_KINDS = 10_000

    def __init__(
        self, burst: int, interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.burst = burst
        self.interval = interval
        self._clock = clock
        self._kinds: dict[tuple[str, str, int], _Repeats] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """``False`` drops the record; a passing one may gain a ``suppressed`` field."""
        if record.levelno < logging.WARNING or self.burst <= 0:
            return True
        now = self._clock()
        key = (record.name, str(record.msg), record.levelno)
        seen = self._kinds.get(key)
        if seen is None or now - seen.last >= self.interval:
            if len(self._kinds) >= self.MAX_KINDS:
                self._kinds.clear()
            self._kinds[key] = _Repeats(start=now, last=now)
            return self._report(record, seen.suppressed if seen is not None else 0)
        seen.last = now
        if seen.passed < self.burst:
            seen.passed += 1
            return True
        if now - seen.start >= self.interval:
            dropped, seen.suppressed, seen.start = seen.suppressed, 0, now
            return self._report(record, dropped)
        seen.suppressed += 1
        return False

    @staticmethod
    def _report(record: logging.LogRecord, dropped: int) -> bool:
        if dropped:
            record.suppressed = dropped
        return True


def setup_logging(config: LogConfig, stream: TextIO | None = None) -> None:
    """Send every log record at ``config.level`` or above to ``stream`` (default stderr).

    Replaces the root logger's handlers, so calling it again (a test, a reload) does not
    duplicate lines. Repeated warnings and errors are limited by a :class:`RepeatFilter` on
    the handler (a handler filter sees the records of every logger, a logger filter only
    its own).
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if config.format == "json" else TextFormatter())
    handler.addFilter(RepeatFilter(config.repeat_burst, float(config.repeat_interval)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_LEVELS[config.level])
    # aiokafka logs every rebalance and reconnect at INFO; keep them for debugging only.
    logging.getLogger("aiokafka").setLevel(max(_LEVELS[config.level], logging.WARNING))

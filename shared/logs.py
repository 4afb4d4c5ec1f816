"""Structured logging: one JSON object per line on stderr (or plain text for a terminal).

Each line carries ``ts`` (RFC 3339, UTC), ``level``, ``logger`` and ``event`` (the log
message), plus every field passed through ``extra=`` (``message_id``, ``stage``, ``reason``...),
and ``exc`` with the traceback when one is logged.

This module owns the formatters and :func:`setup_logging`; it keeps no state of its own
beyond the ``logging`` module's configuration. It does not redact: callers must never pass
secrets (passwords, AUTH credentials, DKIM private keys, message bodies) as the message or
as extra fields, because whatever is logged is written as is.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from shared.config import LogConfig

#: Attributes every ``logging.LogRecord`` has; anything else on a record came from ``extra=``.
_RESERVED = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)

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
        fields = " ".join(f"{k}={v!r}" for k, v in extra_fields(record).items())
        text = f"{_timestamp(record)} {record.levelname.lower():7} {record.name}: "
        text += record.getMessage() + (f" {fields}" if fields else "")
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup_logging(config: LogConfig, stream: TextIO | None = None) -> None:
    """Send every log record at ``config.level`` or above to ``stream`` (default stderr).

    Replaces the root logger's handlers, so calling it again (a test, a reload) does not
    duplicate lines.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if config.format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_LEVELS[config.level])
    # aiokafka logs every rebalance and reconnect at INFO; keep them for debugging only.
    logging.getLogger("aiokafka").setLevel(max(_LEVELS[config.level], logging.WARNING))

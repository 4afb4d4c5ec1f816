"""Where the reporting store is: the one rule the store stage, the CLI and the API share.

``[store].url_file`` (a file holding the DSN: a Kubernetes Secret) wins, then ``[store].url``;
with neither, the embedded bus keeps the store in ``<runtime.data_dir>/store.sqlite3`` (the
stage creates it), and a Kafka deployment has none (``[store]`` must name its PostgreSQL). The
full ``[store]`` section is the stage's (``services/store/config.py``, strict); this module
reads only the keys it needs, and ignores the rest, so it never imports a stage.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from shared.config import Config
from shared.secretfile import read_secret

#: The SQLite file's name in ``runtime.data_dir`` on the embedded bus.
SQLITE_NAME = "store.sqlite3"


class StoreLocation(msgspec.Struct, frozen=True, kw_only=True):
    """The keys of ``[store]`` that say where the database is (the others are ignored here)."""

    enabled: bool = True
    url: str = ""
    url_file: Path | None = None


def sqlite_path(config: Config) -> Path:
    """The embedded bus's store file: ``<runtime.data_dir>/store.sqlite3``."""
    return config.core.runtime.data_dir / SQLITE_NAME


def store_url(config: Config, *, existing_only: bool = False) -> str | None:
    """The store's database URL, or ``None`` when there is no store: ``[store]`` disabled,
    or Kafka without a URL, or (``existing_only``, the CLI's question "is there a store to
    ask?") the embedded bus's SQLite file not created yet.

    Raises :class:`~shared.errors.ConfigError` for a malformed ``[store]`` or an unreadable
    ``url_file``.
    """
    location = config.section("store", StoreLocation)
    if not location.enabled:
        return None
    if location.url_file is not None:
        return read_secret(location.url_file, "store.url_file", config.source).decode().strip()
    if location.url:
        return location.url
    if config.core.bus.kind != "embedded":
        return None
    path = sqlite_path(config)
    if existing_only and not path.exists():
        return None
    return f"sqlite://{path.resolve()}"

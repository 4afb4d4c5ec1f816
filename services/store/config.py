"""The store stage's ``[store]`` config section, decoded strictly.

Where the database is follows ``shared.store.location`` (``url_file``, then ``url``, else
the embedded bus's SQLite file): the CLI and the query API find it the same way. Why the
defaults:

- ``retention_days`` 30: the issue's default for events and message metadata; a tenant's
  own (its ``retention_days`` setting) may be shorter or longer.
- ``batch`` 500: records per fetch and per database transaction. At 500 to 2000 a batch is
  a few statements on PostgreSQL and the writer does over 10,000 events/s on two cores;
  larger batches hold a transaction (and the records' offsets) longer for little gain.
- ``partitions_ahead`` 3: a day's partitions exist before its first event, even after a
  weekend without the retention loop; the writer makes a missing one anyway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

from shared.config import Config, Duration
from shared.errors import ConfigError
from shared.store.location import store_url

SECTION = "store"


class StoreConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Everything the store stage reads from ``[store]``."""

    #: Run the store stage in ``postline run`` (false: no store; message show scans the
    #: topic as before).
    enabled: bool = True
    #: The database: ``postgresql://user@host:5432/db`` (production), or
    #: ``sqlite:///path``. Empty: ``<runtime.data_dir>/store.sqlite3`` on the embedded bus;
    #: on Kafka a postgresql:// URL (or ``url_file``) is required.
    url: str = ""
    #: A file holding the URL (a mounted Kubernetes Secret; wins over ``url``).
    url_file: Path | None = None
    #: Days events and message metadata are kept (1 to 3650) for tenants without their own
    #: retention; whole days (partitions) older than the longest retention are dropped.
    retention_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 30
    #: Events per fetch and per database transaction (1 to 10000).
    batch: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500
    #: Days of partitions made ahead of today (PostgreSQL; 1 to 30).
    partitions_ahead: Annotated[int, msgspec.Meta(ge=1, le=30)] = 3
    #: How often expired days are dropped and coming partitions made.
    retention_interval: Duration = Duration(3600)
    #: The longest wait between two tries of a database that is down (the first is 0.5s,
    #: doubling up to this).
    max_backoff: Duration = Duration(30)
    #: The query API's listen address (``services/store/api.py``).
    api_host: str = "127.0.0.1"
    #: The query API's port (0: no API).
    api_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    #: A file holding the admin token of the query API (it sees every tenant); unset: only
    #: tenants' API keys are accepted.
    admin_token_file: Path | None = None

    def __post_init__(self) -> None:
        # Duration is a float subclass msgspec cannot bound with Meta: checked here.
        if not 1 <= self.retention_interval <= 86400:
            raise ValueError("retention_interval must be from 1s to 1d")
        if not 1 <= self.max_backoff <= 3600:
            raise ValueError("max_backoff must be from 1s to 1h")


def load(config: Config) -> StoreConfig:
    """``[store]`` decoded; a :class:`ConfigError` names the key."""
    return config.section(SECTION, StoreConfig)


def database_url(config: Config) -> str:
    """The store's database URL; :class:`ConfigError` naming ``store.url`` when the Kafka
    bus is used without one (each replica's own SQLite file would split the store)."""
    url = store_url(config)
    if url is None:
        raise ConfigError(
            config.source,
            "store.url",
            "the Kafka bus needs a postgresql:// URL for the store (or store.url_file, or "
            "store.enabled = false)",
        )
    return url

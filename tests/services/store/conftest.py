"""The store fixtures (SQLite and PostgreSQL) of ``testing.storefixtures``."""

from testing.storefixtures import store, store_url

__all__ = ["store", "store_url"]

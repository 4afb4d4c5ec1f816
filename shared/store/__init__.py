"""The reporting store: every event in a database (PostgreSQL, or SQLite on one host), the
rollups reports read, the queries behind ``postline message`` and the store's HTTP API, and
the GDPR export and erasure of an address. ``db.py`` is the connection layer."""

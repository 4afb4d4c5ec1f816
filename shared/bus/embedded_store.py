"""The embedded bus's SQLite file: schema, writes and reads, all synchronous.

Owns the SQL. Every function here runs in a thread owned by ``shared.bus.embedded_threads``
(never on the event loop) and raises ``sqlite3.Error``; the caller maps it. Group membership,
waiting and group commit live in ``shared.bus.embedded`` and ``embedded_threads``.

Layout (one file, WAL mode):

- ``topics``: partition count per topic, fixed when the topic is first used;
- ``partitions``: the next offset per partition (kept apart from ``records`` so retention
  never makes an offset come back);
- ``records``: the log, one row per record, addressed by (topic, partition, offset);
- ``offsets``: the committed next offset per (group, topic, partition).
"""

from __future__ import annotations

import sqlite3
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from shared.bus.base import BusMessage, TopicPartition
from shared.wire.topics import OutRecord

#: Values larger than this are streamed into their row (``blobopen``) instead of bound.
STREAM_VALUE = 256 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (name TEXT PRIMARY KEY, partitions INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS partitions (
    topic TEXT NOT NULL, part INTEGER NOT NULL, next_pos INTEGER NOT NULL,
    PRIMARY KEY (topic, part)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY, topic TEXT NOT NULL, part INTEGER NOT NULL, pos INTEGER NOT NULL,
    key BLOB, value BLOB, ts REAL NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS records_pos ON records (topic, part, pos);
CREATE INDEX IF NOT EXISTS records_key ON records (topic, part, key, pos);
CREATE TABLE IF NOT EXISTS offsets (
    grp TEXT NOT NULL, topic TEXT NOT NULL, part INTEGER NOT NULL, next_pos INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, part)) WITHOUT ROWID;
"""

T = TypeVar("T")

_NO_FLOOR = 2**62  # "no group reads this partition": retention is by age alone

# Kafka's compaction keeps the last record per key; records superseded by a later one of
# the same key go, tombstones go once older than the retention (delete.retention.ms).
_COMPACT = """
DELETE FROM records WHERE topic = ? AND part = ? AND pos < ? AND (
    (value IS NULL AND ts < ?) OR EXISTS (
        SELECT 1 FROM records AS newer WHERE newer.topic = records.topic
        AND newer.part = records.part AND newer.key = records.key AND newer.pos > records.pos))
"""


def key_partition(key: bytes, partitions: int) -> int:
    """The partition a keyed record goes to (``Bus.partition_of`` answers with it too)."""
    # crc32 is stable across processes and Python versions (hash() is salted).
    return zlib.crc32(key) % partitions


def connect(path: Path, *, writer: bool, max_size: int = 0) -> sqlite3.Connection:
    """Open the file; the writer creates the schema and turns on WAL and full fsync, and
    caps the file at ``max_size`` bytes (0: no cap)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    conn.execute("PRAGMA busy_timeout = 30000")
    if writer:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise sqlite3.OperationalError(f"{path}: cannot switch to WAL mode (got {mode})")
        # synchronous=FULL: a commit is fsynced before it returns, so "published" means on disk.
        conn.execute("PRAGMA synchronous = FULL")
        # Mail records are large: give the WAL back to the file system after checkpoints.
        conn.execute(f"PRAGMA journal_size_limit = {64 * 1024 * 1024}")
        conn.executescript(_SCHEMA)
        if max_size:
            # Past max_page_count SQLite refuses to grow the file with SQLITE_FULL, exactly
            # as on a full disk: the statement fails, the transaction is rolled back, the
            # file stays consistent. Freed pages (retention) are reused below the cap.
            (page_size,) = conn.execute("PRAGMA page_size").fetchone()
            conn.execute(f"PRAGMA max_page_count = {max(1, max_size // int(page_size))}")
    else:
        conn.execute("PRAGMA query_only = ON")
    return conn


@dataclass(frozen=True)
class WriteItem:
    """One caller's share of a group commit: records to append and offsets to commit."""

    records: Sequence[OutRecord] = ()
    offsets: Mapping[tuple[str, TopicPartition], int] = field(default_factory=dict)


class StoreWriter:
    """The single writing connection (confined to the writer thread)."""

    def __init__(self, path: Path, default_partitions: int, max_size: int = 0) -> None:
        self._conn = connect(path, writer=True, max_size=max_size)
        self._default_partitions = default_partitions
        self._partitions: dict[str, int] = {}
        self._round_robin: dict[str, int] = {}

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def ensure_topics(self, topics: Iterable[str]) -> dict[str, int]:
        """Create missing topics; the partition count of each."""
        return self._in_transaction(lambda: {t: self._partitions_of(t) for t in topics})

    def write_group(self, items: Sequence[WriteItem]) -> None:
        """Append every record and commit every offset of ``items`` in one transaction."""

        def write() -> None:
            now = time.time()
            next_pos: dict[tuple[str, int], int] = {}
            for item in items:
                for record in item.records:
                    self._append(record, now, next_pos)
                for (group, tp), offset in item.offsets.items():
                    self._conn.execute(
                        "INSERT INTO offsets VALUES (?, ?, ?, ?) ON CONFLICT (grp, topic, part)"
                        " DO UPDATE SET next_pos = excluded.next_pos",
                        (group, tp.topic, tp.partition, offset),
                    )
            self._conn.executemany(
                "INSERT INTO partitions VALUES (?, ?, ?) ON CONFLICT (topic, part)"
                " DO UPDATE SET next_pos = excluded.next_pos",
                [(topic, part, pos) for (topic, part), pos in next_pos.items()],
            )

        self._in_transaction(write)

    def sweep(self, now: float, retention: float, compacted: frozenset[str]) -> None:
        """Delete records older than ``retention`` that every group has consumed; on
        compacted topics delete superseded records and old tombstones instead."""

        def delete() -> None:
            cutoff = now - retention
            parts = self._conn.execute("SELECT topic, part FROM partitions").fetchall()
            for topic, part in parts:
                (floor,) = self._conn.execute(
                    "SELECT MIN(next_pos) FROM offsets WHERE topic = ? AND part = ?",
                    (topic, part),
                ).fetchone()
                floor = _NO_FLOOR if floor is None else floor
                if topic in compacted:
                    self._conn.execute(_COMPACT, (topic, part, floor, cutoff))
                else:
                    self._conn.execute(
                        "DELETE FROM records WHERE topic = ? AND part = ? AND pos < ? AND ts < ?",
                        (topic, part, floor, cutoff),
                    )

        self._in_transaction(delete)

    def _in_transaction(self, body: Callable[[], T]) -> T:
        # BEGIN IMMEDIATE takes the write lock up front, so a second process on the same
        # file waits (busy_timeout) instead of failing halfway through.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            result = body()
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            self._partitions.clear()  # topics created in the rolled-back transaction are gone
            raise
        return result

    def _partitions_of(self, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            self._conn.execute(
                "INSERT OR IGNORE INTO topics VALUES (?, ?)", (topic, self._default_partitions)
            )
            row = self._conn.execute(
                "SELECT partitions FROM topics WHERE name = ?", (topic,)
            ).fetchone()
            count = self._partitions[topic] = int(row[0])
        return count

    def _append(self, record: OutRecord, now: float, next_pos: dict[tuple[str, int], int]) -> None:
        count = self._partitions_of(record.topic)
        if record.key is None:
            part = self._round_robin.get(record.topic, 0) % count
            self._round_robin[record.topic] = part + 1
        else:
            part = key_partition(record.key, count)
        slot = (record.topic, part)
        pos = next_pos.get(slot)
        if pos is None:
            row = self._conn.execute(
                "SELECT next_pos FROM partitions WHERE topic = ? AND part = ?", slot
            ).fetchone()
            pos = 0 if row is None else int(row[0])
        value = record.value
        if value is not None and len(value) > STREAM_VALUE:
            # A large value (a message) is written into the row in place: binding it would
            # copy it once into SQLite and once more into the row's record (issue 11 item 6:
            # about two extra copies of every large message in memory during the write).
            cursor = self._conn.execute(
                "INSERT INTO records (topic, part, pos, key, value, ts)"
                " VALUES (?, ?, ?, ?, zeroblob(?), ?)",
                (record.topic, part, pos, record.key, len(value), now),
            )
            assert cursor.lastrowid is not None
            with self._conn.blobopen("records", "value", cursor.lastrowid) as blob:
                blob.write(value)
        else:
            self._conn.execute(
                "INSERT INTO records (topic, part, pos, key, value, ts) VALUES (?, ?, ?, ?, ?, ?)",
                (record.topic, part, pos, record.key, value, now),
            )
        next_pos[slot] = pos + 1


class StoreReader:
    """A read-only connection (confined to one reader thread); sees committed data only."""

    def __init__(self, path: Path) -> None:
        self._conn = connect(path, writer=False)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def read(
        self, positions: Sequence[tuple[TopicPartition, int]], max_records: int, max_bytes: int
    ) -> list[BusMessage]:
        """Records from each partition at or after its position, in order, partition after
        partition, up to ``max_records`` and about ``max_bytes`` (at least one record)."""
        out: list[BusMessage] = []
        size = 0
        # One query for the ends spares a query per partition with nothing new: a consumer
        # that keeps up finds most of its partitions empty at every fetch.
        ends = self._ends({tp.topic for tp, _ in positions})
        for tp, start in positions:
            if ends.get((tp.topic, tp.partition), 0) <= start:
                continue
            rows = self._conn.execute(
                "SELECT pos, key, value, ts FROM records WHERE topic = ? AND part = ?"
                " AND pos >= ? ORDER BY pos LIMIT ?",
                (tp.topic, tp.partition, start, max_records - len(out)),
            )
            for pos, key, value, ts in rows:
                if out and size + len(value or b"") > max_bytes:
                    return out
                out.append(BusMessage(tp.topic, tp.partition, pos, key, value, ts))
                size += len(value or b"") + len(key or b"")
            if len(out) >= max_records:
                break
        return out

    def _ends(self, topics: set[str]) -> dict[tuple[str, int], int]:
        marks = ",".join("?" * len(topics))
        rows = self._conn.execute(
            f"SELECT topic, part, next_pos FROM partitions WHERE topic IN ({marks})",
            tuple(topics),
        )
        return {(str(topic), int(part)): int(end) for topic, part, end in rows}

    def topic_ends(self, since_version: int | None) -> tuple[int, dict[str, int] | None]:
        """SQLite's ``data_version`` (it changes when another connection commits) and, when
        it is not ``since_version``, a figure per topic that grows with every record written
        to it (the sum of its partitions' next offsets)."""
        (version,) = self._conn.execute("PRAGMA data_version").fetchone()
        if version == since_version:
            return int(version), None
        rows = self._conn.execute("SELECT topic, SUM(next_pos) FROM partitions GROUP BY topic")
        return int(version), {str(topic): int(end) for topic, end in rows}

    def committed(self, group: str, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The committed next offset per partition (0 when never committed)."""
        result: dict[TopicPartition, int] = {}
        for tp in tps:
            row = self._conn.execute(
                "SELECT next_pos FROM offsets WHERE grp = ? AND topic = ? AND part = ?",
                (group, tp.topic, tp.partition),
            ).fetchone()
            result[tp] = 0 if row is None else int(row[0])
        return result

    def offsets_since(self, topic: str, since: float) -> dict[int, int]:
        """Per partition, the first offset whose timestamp is at or after ``since`` (a
        partition with none is left out)."""
        rows = self._conn.execute(
            "SELECT part, MIN(pos) FROM records WHERE topic = ? AND ts >= ? GROUP BY part",
            (topic, since),
        )
        return {int(part): int(pos) for part, pos in rows}

    def end_offsets(self, topic: str) -> dict[int, int]:
        """The next offset to be written per partition that has records."""
        rows = self._conn.execute("SELECT part, next_pos FROM partitions WHERE topic = ?", (topic,))
        return {int(part): int(pos) for part, pos in rows}

    def table(self, topic: str) -> dict[bytes, bytes]:
        """Last value per key, tombstones removed."""
        # SQLite: with MAX() the bare columns come from the row holding the maximum.
        rows = self._conn.execute(
            "SELECT key, value, MAX(pos) FROM records WHERE topic = ? AND key IS NOT NULL"
            " GROUP BY part, key",
            (topic,),
        )
        return {bytes(key): bytes(value) for key, value, _ in rows if value is not None}

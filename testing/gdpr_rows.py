"""What the GDPR tests erase: store rows written with plain INSERTs (not through the store's
writer, so these tests depend on the schema alone), on SQLite or PostgreSQL, and records on
the compacted topics about one address.

``DAY`` is 2026-12-07 (UTC); on PostgreSQL :func:`prepare` creates that day's partitions.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from shared.bus.embedded_store import StoreWriter
from shared.store.db import Database
from shared.store.migrate import migrate
from shared.wire.records import (
    ControlAction,
    ControlVerb,
    Reputation,
    Suppression,
    SuppressionReason,
)
from shared.wire.topics import CONTROL, REPUTATION, SUPPRESSIONS, OutRecord

#: 2026-12-07T12:00:00Z and its day.
AT = 1_796_644_800.0
DAY = 20261207


async def prepare(db: Database) -> None:
    """Migrate, and on PostgreSQL create ``DAY``'s partitions of events and messages."""
    await migrate(db, now=AT)
    if db.dialect == "postgres":
        for table in ("events", "messages"):
            await db.execute(
                f"CREATE TABLE {table}_p{DAY} PARTITION OF {table}"
                f" FOR VALUES FROM ({DAY}) TO ({DAY + 1})"
            )


async def add_event(
    db: Database,
    kind: str,
    *,
    message_id: str,
    recipient: str = "",
    sender: str = "",
    tenant: str = "acme",
    at: float = AT,
    detail: str = "",
) -> None:
    """One ``events`` row (its id: BLAKE2b-128 of its fields, as the writer's of the bytes)."""
    doc = {
        "kind": kind,
        "message_id": message_id,
        "recipient": recipient,
        "sender": sender,
        "tenant": tenant,
        "at": at,
        "detail": detail,
    }
    text = json.dumps(doc, sort_keys=True)
    event_id = hashlib.blake2b(text.encode(), digest_size=16).digest()
    await db.execute(
        "INSERT INTO events (day, id, at, kind, tenant, message_id, recipient,"
        " recipient_domain, sender, sender_domain, detail, doc)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        DAY,
        event_id,
        at,
        kind,
        tenant,
        message_id,
        recipient,
        recipient.rpartition("@")[2],
        sender,
        sender.rpartition("@")[2],
        detail,
        text,
    )


async def add_message(
    db: Database, message_id: str, *, sender: str, tenant: str = "acme", at: float = AT
) -> None:
    """One ``messages`` row."""
    await db.execute(
        "INSERT INTO messages (day, message_id, at, tenant, sender, sender_domain, recipients)"
        " VALUES ($1, $2, $3, $4, $5, $6, 1)",
        DAY,
        message_id,
        at,
        tenant,
        sender,
        sender.rpartition("@")[2],
    )


async def all_rows(db: Database) -> list[dict[str, Any]]:
    """Every row of every table the store keeps about mail, for "no trace left" checks."""
    rows: list[dict[str, Any]] = []
    for table in ("events", "messages", "erasures", "rollup_hourly"):
        rows += await db.fetch(f"SELECT * FROM {table}")
    return rows


# ------------------------------------------------------------- compacted topics ----

#: The person asking to be forgotten, in the tests.
ERASED = "bob@dest.test"
#: Someone else, whose records must stay.
OTHER = "carol@dest.test"


def topic_records() -> list[OutRecord]:
    """What the compacted topics hold about :data:`ERASED` (and :data:`OTHER`): a global
    hard bounce, acme's complaint with its report id, a one-click unsubscribe from
    news.acme.test's bulk mail with its token HMAC, a credential hold and the credential's
    reputation record (its AUTH login is the address)."""
    bounce = Suppression(
        address=ERASED,
        reason=SuppressionReason.HARD_BOUNCE,
        source="bouncer",
        at=AT,
        detail=f"550 5.1.1 <{ERASED}>: no such user",
        method="smtp",
        message_id="a" * 32,
    )
    complaint = Suppression(
        address=ERASED,
        reason=SuppressionReason.COMPLAINT,
        source="bouncer",
        at=AT + 1,
        tenant="acme",
        method="arf",
        proof="<report-1@feedback.example>",
        message_id="b" * 32,
    )
    unsubscribe = Suppression(
        address=ERASED,
        reason=SuppressionReason.UNSUBSCRIBE,
        source="bouncer",
        at=AT + 2,
        scope="news.acme.test",
        method="one_click",
        proof="00112233445566778899",
        message_id="c" * 32,
    )
    other = Suppression(address=OTHER, reason=SuppressionReason.HARD_BOUNCE, at=AT)
    hold = ControlAction(
        verb=ControlVerb.CREDENTIAL_HOLD, target=f"credential:{ERASED}", at=AT, why="spam"
    )
    reputation = Reputation(key=f"credential|{ERASED}", scope="credential", tenant="acme")
    return [
        *(SUPPRESSIONS.out(s) for s in (bounce, complaint, unsubscribe, other)),
        CONTROL.out(hold),
        REPUTATION.out(reputation),
        REPUTATION.out(Reputation(key="tenant|acme", scope="tenant", tenant="acme")),
    ]


def raw_rows(bus_file: Path, topics: tuple[str, ...]) -> list[tuple[bytes, bytes]]:
    """Every record the embedded bus file holds for ``topics``, as raw (key, value) bytes,
    after a compaction as the bus's sweep does it with every tombstone expired."""
    writer = StoreWriter(bus_file, 2)
    try:
        writer.sweep(now=AT + 10 * 365 * 86400.0, retention=0.0, compacted=frozenset(topics))
    finally:
        writer.close()
    with closing(sqlite3.connect(bus_file)) as conn:
        marks = ",".join("?" * len(topics))
        rows = conn.execute(
            f"SELECT key, value FROM records WHERE topic IN ({marks})", topics
        ).fetchall()
    return [(bytes(k or b""), bytes(v or b"")) for k, v in rows]

"""``postline gdpr export|erase`` through ``shared.cli.main``: on the embedded bus with the
SQLite store, and on Kafka with the store on PostgreSQL. The address must be gone from every
place it could be found, and still be suppressed (by its keyed hash)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from shared import cli
from shared.addresshash import address_hash
from shared.bus.base import Bus
from shared.bus.embedded import EmbeddedBus
from shared.bus.kafka import KafkaBus
from shared.config import KafkaConfig, load_config
from shared.errors import ConfigError
from shared.secretfile import ensure_secret_file
from shared.store.db import open_database
from shared.store.gdpr import erasures
from shared.suppressions import SuppressionTable
from shared.wire.records import SuppressionReason
from shared.wire.topics import CONTROL, REPUTATION, SUPPRESSIONS
from testing.gdpr_rows import (
    AT,
    ERASED,
    OTHER,
    add_event,
    add_message,
    all_rows,
    prepare,
    raw_rows,
    topic_records,
)

M1 = "a" * 32


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "postline.toml"
    path.write_text(
        f'[embedded]\npath = "{tmp_path / "bus.db"}"\npartitions = 2\n'
        f'[runtime]\ndata_dir = "{tmp_path / "data"}"\n' + extra
    )
    return path


async def publish(bus: Bus) -> None:
    await bus.ensure_topics([SUPPRESSIONS.name, CONTROL.name, REPUTATION.name])
    await bus.publish(topic_records())


async def fill_store(url: str) -> None:
    db = await open_database(url)
    try:
        await prepare(db)
        await add_message(db, M1, sender="news@acme.test")
        await add_event(db, "delivered", message_id=M1, recipient=ERASED)
        await add_event(db, "complained", message_id=M1, recipient=ERASED, tenant="")
        await add_event(db, "delivered", message_id=M1, recipient=OTHER)
    finally:
        await db.close()


def run(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["--config", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def embedded(tmp_path: Path) -> Path:
    """A config, the topics' records and a store file with rows about the address."""
    config = write_config(tmp_path)

    async def setup() -> None:
        bus = EmbeddedBus(load_config(config, environ={}).core.embedded)
        await bus.start()
        try:
            await publish(bus)
        finally:
            await bus.close()
        (tmp_path / "data").mkdir()
        await fill_store(f"sqlite:///{tmp_path / 'data' / 'store.sqlite3'}")

    asyncio.run(setup())
    return config


def test_export_shows_store_rows_and_topic_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = embedded(tmp_path)
    code, out, err = run(config, capsys, "gdpr", "export", "Bob@Dest.test")
    assert code == 0, err
    found = json.loads(out)
    assert sorted(e["kind"] for e in found["store"]["events"]) == ["complained", "delivered"]
    suppressions = found["topics"]["suppressions"]
    assert [(s["reason"], s["tenant"], s["scope"]) for s in suppressions] == [
        ("hard_bounce", "", ""),
        ("unsubscribe", "", "news.acme.test"),
        ("complaint", "acme", ""),
    ]
    # The proof is part of what is held (and shown).
    assert suppressions[1]["method"] == "one_click" and suppressions[1]["proof"]
    assert suppressions[2]["proof"] == "<report-1@feedback.example>"
    assert [a["target"] for a in found["topics"]["control"]] == [f"credential:{ERASED}"]
    assert [r["key"] for r in found["topics"]["reputation"]] == [f"credential|{ERASED}"]
    # One tenant: its scoped entries only.
    code, out, _ = run(config, capsys, "gdpr", "export", ERASED, "--tenant", "acme")
    assert [s["reason"] for s in json.loads(out)["topics"]["suppressions"]] == ["complaint"]


def test_erase_needs_yes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = embedded(tmp_path)
    code, out, err = run(config, capsys, "gdpr", "erase", ERASED)
    assert code == 1 and "--yes" in err
    would = json.loads(out)["would_erase"]
    assert (would["suppressions_hashed"], would["store_events"]) == (3, 2)
    code, out, _ = run(config, capsys, "gdpr", "export", ERASED)
    assert len(json.loads(out)["topics"]["suppressions"]) == 3  # nothing erased
    code, _, err = run(config, capsys, "gdpr", "erase", "not-an-address")
    assert code == 1 and "not an address" in err


def suppression_table(config: Path, hash_key: bool = True) -> SuppressionTable:
    """The table ingest and the signer build, loaded from the embedded bus."""
    loaded = load_config(config, environ={})
    table = SuppressionTable.for_config(loaded)
    if not hash_key:
        table = SuppressionTable(None, ConfigError("t", "secrets.gdpr_hash_key_file", "none"))

    async def load() -> None:
        bus = EmbeddedBus(loaded.core.embedded)
        await bus.start()
        try:
            await table.load(bus)
        finally:
            await bus.close()

    asyncio.run(load())
    return table


def test_erase_removes_the_address_everywhere_and_keeps_it_suppressed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = embedded(tmp_path)
    code, out, err = run(config, capsys, "gdpr", "erase", "BOB@dest.test", "--yes")
    assert code == 0, err
    assert ERASED not in out  # the summary names the hash, not the address
    key = (tmp_path / "data" / "secrets" / "gdpr.key").read_bytes().strip()
    digest = address_hash(key, ERASED)
    summary = json.loads(out)
    assert summary["address_hash"] == digest
    assert summary["erased"] == {
        "suppressions_hashed": 3,
        "control_tombstoned": 1,
        "reputation_tombstoned": 1,
        "quarantine_tombstoned": 0,
        "quarantine_kept": 0,
        "queue_in_flight": 0,
        "store_events": 2,
        "store_messages": 0,
    }
    # Export finds nothing any more.
    code, out, _ = run(config, capsys, "gdpr", "export", ERASED)
    found = json.loads(out)
    assert found["store"] == {"events": [], "messages": []}
    assert all(not records for records in found["topics"].values())

    # The hashed entries keep reason, scope, tenant, time, source and proof.
    async def table() -> list[Any]:
        bus = EmbeddedBus(load_config(config, environ={}).core.embedded)
        await bus.start()
        try:
            values = (await bus.read_table(SUPPRESSIONS.name)).values()
            return [SUPPRESSIONS.decode(v) for v in values]
        finally:
            await bus.close()

    entries = sorted(asyncio.run(table()), key=lambda s: s.at)
    hashed = [s for s in entries if s.address_hash]
    assert [(s.reason, s.tenant, s.scope, s.at, s.source, s.method) for s in hashed] == [
        (SuppressionReason.HARD_BOUNCE, "", "", AT, "bouncer", "smtp"),
        (SuppressionReason.COMPLAINT, "acme", "", AT + 1, "bouncer", "arf"),
        (SuppressionReason.UNSUBSCRIBE, "", "news.acme.test", AT + 2, "bouncer", "one_click"),
    ]
    assert [s.proof for s in hashed] == ["", "<report-1@feedback.example>", "00112233445566778899"]
    assert {s.address_hash for s in hashed} == {digest} and {s.address for s in hashed} == {""}
    assert [s.address for s in entries if not s.address_hash] == [OTHER]  # others stay

    # The suppression check ingest and the signer use still refuses the address.
    live = suppression_table(config)
    assert live.is_suppressed("Bob@Dest.test")  # the global hard bounce
    assert live.is_suppressed(ERASED, tenant="acme")
    assert live.is_suppressed(OTHER) and not live.is_suppressed("dave@dest.test")
    with pytest.raises(ConfigError, match="gdpr_hash_key_file"):
        suppression_table(config, hash_key=False)  # no key: refuses, never mails them

    # No record of the compacted topics holds the address once compacted.
    topics = (SUPPRESSIONS.name, CONTROL.name, REPUTATION.name)
    rows = raw_rows(tmp_path / "bus.db", topics)
    assert len(rows) >= 4  # the hashed entries, carol's, acme's reputation
    for key_bytes, value in rows:
        assert ERASED.encode() not in key_bytes and ERASED.encode() not in value

    # The store: no row holds it; the erasure is recorded by its hash.
    async def store() -> tuple[list[Any], list[Any]]:
        db = await open_database(f"sqlite:///{tmp_path / 'data' / 'store.sqlite3'}")
        try:
            return await all_rows(db), await erasures(db)
        finally:
            await db.close()

    rows_left, records = asyncio.run(store())
    assert all(ERASED not in repr(row) for row in rows_left)
    assert [(r["address_hash"], r["counts"]["suppressions_hashed"]) for r in records] == [
        (digest, 3)
    ]
    assert records[0]["by"].startswith("cli:")


def test_erase_on_kafka_with_the_store_on_postgresql(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kafka_bootstrap: str,
    topic_prefix: str,
    postgres_db: str,
) -> None:
    key_file = tmp_path / "gdpr.key"
    config = write_config(
        tmp_path,
        f'[bus]\nkind = "kafka"\n[kafka]\nbootstrap = "{kafka_bootstrap}"\n'
        f'topic_prefix = "{topic_prefix}"\n[store]\nurl = "{postgres_db}"\n'
        f'[secrets]\ngdpr_hash_key_file = "{key_file}"\n',
    )
    kafka = KafkaConfig(bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)

    async def setup() -> None:
        bus = KafkaBus(kafka, instance="gdpr-test")
        await bus.start()
        try:
            await publish(bus)
        finally:
            await bus.close()
        await fill_store(postgres_db)

    asyncio.run(setup())
    # On Kafka the key is never made up by the CLI: the stages must already share it.
    code, _, err = run(config, capsys, "gdpr", "erase", ERASED, "--yes")
    assert code == 1 and "gdpr_hash_key_file" in err
    ensure_secret_file(key_file)
    code, out, err = run(config, capsys, "gdpr", "export", ERASED)
    assert code == 0, err
    assert len(json.loads(out)["store"]["events"]) == 2
    code, out, err = run(config, capsys, "gdpr", "erase", ERASED, "--yes")
    assert code == 0, err
    assert json.loads(out)["erased"]["store_events"] == 2
    code, out, _ = run(config, capsys, "gdpr", "export", ERASED)
    found = json.loads(out)
    assert found["store"] == {"events": [], "messages": []}
    assert all(not records for records in found["topics"].values())

    async def tables() -> dict[bytes, bytes]:
        bus = KafkaBus(kafka, instance="gdpr-test-2")
        await bus.start()
        try:
            table: dict[bytes, bytes] = {}
            for topic in (SUPPRESSIONS, CONTROL, REPUTATION):
                table |= await bus.read_table(topic.name)
            return table
        finally:
            await bus.close()

    table = asyncio.run(tables())
    for key_bytes, value in table.items():
        assert ERASED.encode() not in key_bytes and ERASED.encode() not in value
    digest = address_hash(key_file.read_bytes().strip(), ERASED)
    assert sum(digest.encode() in key_bytes for key_bytes in table) == 3

"""The quarantine on a real bus (embedded and Kafka): a message written to postline.quarantine
is listed; a release puts its Submission on postline.submitted exactly once, accepted again
at the release, removes the entry and emits an audited event; a second release finds nothing
and publishes nothing; delete removes unsent; ids are found by prefix, never ambiguously."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from shared import quarantine
from shared.bus.base import Bus
from shared.errors import QuarantineInvalid, QuarantineNotFound
from shared.quarantine import QuarantineEntry
from shared.wire.records import Event, EventKind, Submission
from shared.wire.topics import EVENTS, QUARANTINE, SUBMITTED, OutRecord
from testing.buses import bus_of_kind
from testing.quarantine import AT, quarantined

ALL_TOPICS = [SUBMITTED.name, QUARANTINE.name, EVENTS.name]


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    opened = bus_of_kind(request.param, request, tmp_path, "quarantine")
    await opened.start()
    await opened.ensure_topics(ALL_TOPICS)
    yield opened
    await opened.close()


async def submitted(bus: Bus) -> list[Submission]:
    return [SUBMITTED.decode(m.value) async for m in bus.read_to_end(SUBMITTED.name) if m.value]


async def audited(bus: Bus) -> list[Event]:
    events = [EVENTS.decode(m.value) async for m in bus.read_to_end(EVENTS.name) if m.value]
    return [e for e in events if e.kind is EventKind.QUARANTINE]


async def counts(bus: Bus) -> tuple[int, ...]:
    """Records on each topic (tombstones included): what any publish would change."""
    return tuple([len([m async for m in bus.read_to_end(topic)]) for topic in ALL_TOPICS])


async def test_an_entry_is_listed_released_once_and_gone(bus: Bus) -> None:
    held, other = quarantined(), quarantined(tenant="acme", score=7.0)
    await bus.publish([quarantine.entry_record(held), quarantine.entry_record(other)])

    entries = await quarantine.load(bus)
    assert [e.id for e in entries] == sorted([held.submission.id, other.submission.id])
    assert {e.id: e.record for e in entries} == {
        held.submission.id: held,
        other.submission.id: other,
    }
    [mine] = quarantine.select(entries, tenant="shop")
    row = quarantine.entry_dict(mine)
    assert (row["tenant"], row["sender"], row["recipients"], row["score"]) == (
        "shop",
        "app@shop.test",
        2,
        9.5,
    )
    assert row["top_symbols"] == ["BAYES_SPAM", "FUZZY_X", "R_SUSPICIOUS_URL"]
    assert quarantine.detail_dict(mine)["headers"].splitlines()[-1] == "Message-ID: <q1@shop.test>"

    [result] = await quarantine.release(bus, [mine], by="cli:alice", why="false positive")
    assert result == quarantine.Result(held.submission.id, True, "released to postline.submitted")

    [sent] = await submitted(bus)
    # The very Submission, bytes and all, accepted again at the release (module docstring).
    assert sent.received_at > AT
    assert sent == msgspec.structs.replace(held.submission, received_at=sent.received_at)
    [event] = await audited(bus)
    assert (event.classification, event.by, event.detail) == (
        "released",
        "cli:alice",
        "false positive",
    )
    assert (event.message_id, event.tenant, event.sender) == (
        held.submission.id,
        "shop",
        "app@shop.test",
    )
    assert event.figures["received_at"] == held.submission.received_at
    assert event.figures["quarantined_at"] == AT
    assert event.symbols == held.symbols
    assert event.at == sent.received_at

    left = await quarantine.load(bus)
    assert [e.id for e in left] == [other.submission.id]
    # The same id again: not in the quarantine any more, nothing published.
    before = await counts(bus)
    with pytest.raises(QuarantineNotFound, match="already released or deleted"):
        quarantine.resolve(left, [held.submission.id])
    assert await counts(bus) == before
    assert len(await submitted(bus)) == 1


async def test_delete_removes_unsent_with_an_event(bus: Bus) -> None:
    held = quarantined()
    await bus.publish([quarantine.entry_record(held)])
    entries = quarantine.resolve(await quarantine.load(bus), [held.submission.id[:8]])
    [result] = await quarantine.delete(bus, entries, by="api:192.0.2.9", why="phishing")
    assert result.done
    assert await quarantine.load(bus) == []
    assert await submitted(bus) == []
    [event] = await audited(bus)
    assert (event.classification, event.by, event.detail) == (
        "deleted",
        "api:192.0.2.9",
        "phishing",
    )
    assert event.message_id == held.submission.id
    with pytest.raises(QuarantineNotFound):
        quarantine.resolve(await quarantine.load(bus), [held.submission.id])


async def test_an_undecodable_entry_is_listed_kept_on_release_and_deletable(bus: Bus) -> None:
    await bus.publish([OutRecord(QUARANTINE.name, b"feedface00", b"\xc1 not msgpack")])
    [entry] = await quarantine.load(bus)
    assert entry.record is None and "cannot decode Quarantined" in entry.problem
    [kept] = await quarantine.release(bus, [entry], by="cli:alice")
    assert not kept.done and kept.why.startswith("not released: postline.quarantine")
    assert await submitted(bus) == [] and await audited(bus) == []
    [gone] = await quarantine.delete(bus, [entry], by="cli:alice")
    assert gone.done and await quarantine.load(bus) == []
    [event] = await audited(bus)
    assert (event.classification, event.message_id) == ("deleted", "feedface00")


def entry(message_id: str) -> QuarantineEntry:
    return QuarantineEntry(message_id, quarantined(message_id))


def test_find_by_id_or_unique_prefix() -> None:
    entries = [entry("abcdef0011"), entry("abcdef0022"), entry("123456")]
    assert quarantine.find(entries, "abcdef0011").id == "abcdef0011"
    assert quarantine.find(entries, " abcdef002 ").id == "abcdef0022"
    assert quarantine.find(entries, "123456").id == "123456"  # a whole id, however short
    with pytest.raises(QuarantineInvalid, match="'abcdef' is ambiguous: 2 messages"):
        quarantine.find(entries, "abcdef")
    with pytest.raises(QuarantineInvalid, match="at least 6 characters"):
        quarantine.find(entries, "abc")
    with pytest.raises(QuarantineNotFound, match="no message 'ffffff'"):
        quarantine.find(entries, "ffffff")


def test_resolve_takes_each_once_and_all_or_nothing() -> None:
    entries = [entry("abcdef0011"), entry("abcdef0022")]
    chosen = quarantine.resolve(entries, ["abcdef0022", "abcdef002", "abcdef0011"])
    assert [e.id for e in chosen] == ["abcdef0022", "abcdef0011"]
    with pytest.raises(QuarantineNotFound):
        quarantine.resolve(entries, ["abcdef0011", "0000000000"])
    with pytest.raises(QuarantineInvalid, match="at least one"):
        quarantine.resolve(entries, [])


def test_header_block_and_top_symbols() -> None:
    assert quarantine.header_block(b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\n") == b"A: 1\r\nB: 2"
    assert quarantine.header_block(b"A: 1\n\nbody") == b"A: 1"
    assert quarantine.header_block(b"A: 1\r\n") == b"A: 1\r\n"
    assert quarantine.top_symbols({"A": 1.0, "B": 3.0, "C": 3.0, "D": -2.0}, 2) == ["B", "C"]

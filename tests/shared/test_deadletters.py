"""Dead letters on a real bus (embedded and Kafka): records a stage's consume loop could not
use land on postline.dead; after a fix, a redrive puts one back and the stage processes it,
while a record that still does not decode stays dead with the reason and is never
republished; purge marks handled; every action is an audited event naming who."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from shared import deadletters
from shared.bus.base import Bus
from shared.config import load_config
from shared.deadletters import Selection, State
from shared.errors import DeadLetterInvalid, DeadLetterNotFound
from shared.runtime.batch import Item, run_batch_loop
from shared.wire.records import ClientInfo, DeadLetter, EventKind, Submission, new_id
from shared.wire.topics import DEAD, DEAD_STATE, EVENTS, SUBMITTED, OutRecord
from testing.buses import bus_of_kind
from testing.deadletters import dead_submission
from testing.stage import stage_context

DEADLINE = 60.0
GARBAGE = b"\xc1 this is not msgpack"


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    opened = bus_of_kind(request.param, request, tmp_path, "dead")
    await opened.start()
    await opened.ensure_topics([SUBMITTED.name, DEAD.name, DEAD_STATE.name, EVENTS.name])
    yield opened
    await opened.close()


def submission(tenant: str) -> Submission:
    return Submission(
        id=new_id(),
        received_at=1.0,
        client=ClientInfo(ip="192.0.2.1"),
        mail_from="a@shop.test",
        rcpt_to=("b@dest.test",),
        data=b"Subject: x\r\n\r\nhi\r\n",
        tenant=tenant,
    )


class Stage:
    """A stage on postline.submitted that cannot handle tenant shop's mail until fixed (a
    missing key, a bug): its consume loop dead-letters what it keeps failing on."""

    def __init__(self) -> None:
        self.fixed = False
        self.processed: list[str] = []

    async def handle(self, items: Sequence[Item[Submission]]) -> Sequence[OutRecord]:
        done = []
        for item in items:
            if item.record.tenant == "shop" and not self.fixed:
                raise RuntimeError("no DKIM key for shop.test")
            done.append(item.record.id)
        self.processed += done  # a failed batch did nothing (it is retried record by record)
        return []


async def until(check: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def audited(bus: Bus) -> list[tuple[str, str]]:
    """(action, who) of every dead-letter audit event."""
    events = [EVENTS.decode(m.value) async for m in bus.read_to_end(EVENTS.name) if m.value]
    return [(e.classification, e.by) for e in events if e.kind is EventKind.DEAD_LETTER]


async def count(bus: Bus, topic: str) -> int:
    return len([m async for m in bus.read_to_end(topic)])


async def test_redrive_after_a_fix_is_processed_and_undecodable_stays_dead(bus: Bus) -> None:
    stage = Stage()
    ok, broken = submission("acme"), submission("shop")
    await bus.publish(
        [SUBMITTED.out(ok), SUBMITTED.out(broken), OutRecord(SUBMITTED.name, b"junk", GARBAGE)]
    )
    ctx = stage_context("signer", load_config(None, environ={}), bus)
    loop = asyncio.create_task(
        run_batch_loop(
            ctx,
            group="test-dead",
            topic=SUBMITTED,
            handle=stage.handle,
            metrics=ctx.metrics,
            poll_timeout=0.05,
            record_attempts=2,
        )
    )
    try:
        dead_count = 0

        async def two_dead() -> None:
            nonlocal dead_count
            while dead_count < 2:
                dead_count = await count(bus, DEAD.name)
                await asyncio.sleep(0.1)

        await asyncio.wait_for(two_dead(), DEADLINE)
        entries = await deadletters.load(bus)
        reasons = {entry.letter.key: entry.letter.reason for entry in entries if entry.letter}
        assert reasons[broken.id.encode()] == "failed: RuntimeError: no DKIM key for shop.test"
        assert reasons[b"junk"].startswith("decode: postline.submitted: cannot decode Submission")
        assert {entry.state for entry in entries} == {State.DEAD}
        assert stage.processed == [ok.id]

        stage.fixed = True  # the operator deployed the fix
        selected = deadletters.select(
            entries, deadletters.selection(at=0, action="redrive", every=True)
        )
        results = {r.offset: r for r in await deadletters.redrive(bus, selected, by="cli:ops")}
        by_key = {entry.letter.key: entry.offset for entry in entries if entry.letter}
        redriven, refused = results[by_key[broken.id.encode()]], results[by_key[b"junk"]]
        assert (redriven.done, redriven.why) == (True, "back on postline.submitted")
        assert not refused.done
        assert refused.why.startswith("not redriven: postline.submitted: cannot decode Submission")
        await until(lambda: broken.id in stage.processed, "the redriven record to be processed")
    finally:
        ctx.stopping.set()
        await asyncio.wait_for(loop, DEADLINE)

    assert await count(bus, SUBMITTED.name) == 4  # the three, and the redriven one only
    assert await count(bus, DEAD.name) == 2  # nothing was dead-lettered again
    after = {entry.offset: entry for entry in await deadletters.load(bus)}
    assert after[by_key[broken.id.encode()]].state is State.REDRIVEN
    junk = after[by_key[b"junk"]]
    assert junk.state is State.DEAD
    assert junk.mark is not None and junk.mark.note == refused.why
    # A listing shows what is still dead; a second redrive of everything redrives nothing
    # twice, and naming the redriven one says it is done already.
    assert [e.offset for e in deadletters.select(after.values(), Selection())] == [junk.offset]
    again = await deadletters.redrive(
        bus, deadletters.select(after.values(), Selection(offsets=frozenset(after))), by="x"
    )
    assert sorted((r.offset, r.done, r.why.split(":")[0]) for r in again) == sorted(
        [(junk.offset, False, "not redriven"), (redriven.offset, False, "already redriven by cli")]
    )
    assert await count(bus, SUBMITTED.name) == 4

    purged = await deadletters.purge(bus, [junk], by="cli:ops", why="junk from a test client")
    assert [(r.offset, r.done) for r in purged] == [(junk.offset, True)]
    final = await deadletters.load(bus)
    assert deadletters.select(final, Selection()) == []
    assert {e.state for e in final} == {State.REDRIVEN, State.PURGED}

    assert sorted(await audited(bus)) == sorted(
        [
            ("redriven", "cli:ops"),
            ("redrive_refused", "cli:ops"),
            ("redrive_refused", "x"),
            ("purged", "cli:ops"),
        ]
    )


async def test_show_decodes_what_it_can_and_hex_otherwise(bus: Bus) -> None:
    sub = submission("acme")
    await bus.publish(
        [
            DEAD.out(letter(SUBMITTED.encode(sub), "poison: no recipients")),
            DEAD.out(letter(GARBAGE, "decode: bad bytes")),
            DEAD.out(letter(None, "output too large: 70 MiB")),
        ]
    )
    first, second, third = await deadletters.load(bus)
    shown = deadletters.detail_dict(first)
    assert shown["record_type"] == "Submission"
    assert shown["value"]["id"] == sub.id
    assert shown["value"]["data"] == "Subject: x\r\n\r\nhi\r\n"  # text, not base64
    assert shown["reason"] == "poison: no recipients"
    hexed = deadletters.detail_dict(second)
    assert hexed["decode_error"].startswith("postline.submitted: cannot decode Submission")
    assert hexed["value_hex"] == (
        f"00000000  {GARBAGE[:16].hex(' ')}\n00000010  {GARBAGE[16:].hex(' ')}"
    )
    assert deadletters.detail_dict(third)["decode_error"] == (
        "the original value was not kept (it made the output too large)"
    )
    (result,) = await deadletters.redrive(bus, [third], by="t")
    assert not result.done
    with pytest.raises(DeadLetterNotFound, match=r"no dead letter at offset 99 of postline\.dead"):
        deadletters.select([first, second, third], Selection(offsets=frozenset({99})))


def letter(value: bytes | None, reason: str) -> DeadLetter:
    return dead_submission(value, reason, partition=1, offset=7)


def test_selection_needs_a_target_and_valid_times() -> None:
    with pytest.raises(DeadLetterInvalid, match="redrive: name offsets"):
        deadletters.selection(at=0, action="redrive")
    with pytest.raises(DeadLetterInvalid, match="offsets or filters, not both"):
        deadletters.selection(at=0, action="purge", offsets=[1], topic="postline.submitted")
    with pytest.raises(DeadLetterInvalid, match="expected a duration like '2h' or a time"):
        deadletters.selection(at=0, since="yesterday")
    at = 1_790_000_000.0
    assert deadletters.selection(at=at, since="2h").since == at - 7200
    assert deadletters.selection(at=at, since="2026-09-21T14:13:20Z").since == at
    assert deadletters.selection(at=at, action="purge", older_than="1d").before == at - 86400

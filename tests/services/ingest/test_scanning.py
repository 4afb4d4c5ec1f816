"""Content scanning at the end of DATA with a real rspamd (``deploy/local/rspamd.sh``): what
the client hears, what reaches the bus and which events say so, for each verdict, for a
scanner that is down or answers garbage, and for a message over the scan limit.

The rspamd the tests use runs offline (no DNS lists, no fuzzy storage, no Redis), so its
verdicts depend on the message alone: GTUBE is "reject", a short plain message "no action",
and an all-capitals subject scores about 2.3 (``SUBJ_ALL_CAPS``), which the quarantine tests
use as their band.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from shared.wire.records import Event, EventKind, Quarantined, Submission
from shared.wire.topics import QUARANTINE, SUBMITTED
from testing import eventschema
from tests.services.ingest.conftest import Running, StartIngest
from tests.services.ingest.sessions import logged_in

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
CLEAN = b"From: alice@example.com\r\nTo: bob@dest.test\r\nSubject: Lunch\r\n\r\nSee you at one.\r\n"
SPAM = CLEAN.replace(b"See you at one.", GTUBE)
#: Scores about 2.3 offline (SUBJ_ALL_CAPS): inside a quarantine band starting at 2.
SHOUTING = CLEAN.replace(b"Subject: Lunch", b"Subject: FREE MONEY NOW CLICK HERE TODAY")
ROOT = Path(__file__).resolve().parents[3]


def scanning(url: str, **extra: Any) -> dict[str, Any]:
    return {"url": url, "timeout": "5s", **extra}


async def send(ingest: Running, data: bytes) -> tuple[int, str]:
    """DATA's reply to ``data`` from alice to bob@dest.test."""
    client = await logged_in(ingest)
    try:
        await client.mail("alice@example.com")
        await client.rcpt("bob@dest.test")
        code, text = await client.data(data)
    except aiosmtplib.SMTPDataError as exc:
        code, text = exc.code, exc.message
    finally:
        await client.quit()
    return code, text


async def events(ingest: Running, count: int) -> list[Event]:
    found: list[Event] = await ingest.events(count)
    eventschema.assert_published(found)  # ingest's own, as docs/events.md has them
    return found


def of(found: list[Event], kind: EventKind) -> list[Event]:
    return [e for e in found if e.kind is kind]


async def test_gtube_is_refused_at_data_with_a_reference_and_events_naming_the_scanner(
    start_ingest: StartIngest, rspamd_url: str
) -> None:
    ingest = await start_ingest(scanning=scanning(rspamd_url))
    code, text = await send(ingest, SPAM)
    assert code == 550
    assert text.startswith("5.7.1 Message refused by content policy (ref ")
    assert "GTUBE" not in text  # the scanner's symbols never reach the client
    found = await events(ingest, 2)
    [rejected] = of(found, EventKind.REJECTED)
    [scanned] = of(found, EventKind.SCANNED)
    assert (rejected.check, rejected.reply and rejected.reply.code) == ("rspamd", 550)
    assert rejected.message_id in text and rejected.credential == "alice"
    assert (scanned.classification, scanned.check) == ("rejected", "rspamd")
    assert "GTUBE" in scanned.symbols
    assert scanned.figures["score"] >= scanned.figures["required"] > 0
    assert scanned.message_id == rejected.message_id
    assert await ingest.records(SUBMITTED, 0) == []


async def test_a_clean_message_is_queued_with_the_verdict_in_its_scanned_event(
    start_ingest: StartIngest, rspamd_url: str
) -> None:
    ingest = await start_ingest(scanning=scanning(rspamd_url))
    code, text = await send(ingest, CLEAN)
    assert code == 250, text
    [submission] = await ingest.records(SUBMITTED, 1)
    assert isinstance(submission, Submission)
    assert submission.data.endswith(b"See you at one.\r\n")
    assert b"X-Spam" not in submission.data  # a clean message is not marked
    found = await events(ingest, 2)
    [accepted] = of(found, EventKind.ACCEPTED)
    [scanned] = of(found, EventKind.SCANNED)
    assert accepted.message_id == scanned.message_id == submission.id
    assert scanned.classification == "clean"
    assert scanned.figures["score"] < 6 and scanned.symbols
    assert scanned.detail.startswith(f"ref {submission.id}; action no action")
    assert ingest.stage.core.metrics.scans.labels("clean")._value.get() == 1


@pytest.mark.parametrize("where", [pytest.param("kafka", marks=pytest.mark.kafka), "embedded"])
async def test_a_message_in_the_quarantine_band_is_held_not_queued(
    where: str, start_ingest: StartIngest, rspamd_url: str, request: pytest.FixtureRequest
) -> None:
    kafka = None
    if where == "kafka":
        kafka = (
            request.getfixturevalue("kafka_bootstrap"),
            request.getfixturevalue("topic_prefix"),
        )
    ingest = await start_ingest(scanning=scanning(rspamd_url, quarantine_score=2.0), kafka=kafka)
    code, text = await send(ingest, SHOUTING)
    assert code == 250, text  # the client is done with it: holding it is ours to decide
    [held] = await ingest.records(QUARANTINE, 1)
    assert isinstance(held, Quarantined)
    assert held.submission.rcpt_to == ("bob@dest.test",)
    assert held.submission.id in text and held.reference == held.submission.id
    assert held.score >= 2.0 and "SUBJ_ALL_CAPS" in held.symbols
    assert held.submission.data.endswith(b"See you at one.\r\n")
    assert await ingest.records(SUBMITTED, 0) == []
    found = await events(ingest, 1)
    assert [(e.kind, e.classification) for e in found] == [(EventKind.SCANNED, "quarantined")]


async def test_tag_mode_sends_even_gtube_marked_and_refuses_nothing(
    start_ingest: StartIngest, rspamd_url: str
) -> None:
    ingest = await start_ingest(scanning=scanning(rspamd_url, mode="tag"))
    code, _ = await send(ingest, SPAM)
    assert code == 250
    [submission] = await ingest.records(SUBMITTED, 1)
    assert submission.data.startswith(b"X-Spam: Yes\r\nReceived: from ")
    [scanned] = of(await events(ingest, 2), EventKind.SCANNED)
    assert scanned.classification == "tagged"


def refused_port() -> tuple[socket.socket, str]:
    """A loopback port that refuses connections (bound, not listening): a scanner that is
    down. Keep the socket open while it is used, so no one else gets the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_a_scanner_down_fails_open_with_an_event_or_defers_when_closed(
    start_ingest: StartIngest,
) -> None:
    sock, url = refused_port()
    with sock:
        ingest = await start_ingest(scanning=scanning(url))
        code, _ = await send(ingest, CLEAN)
        assert code == 250
        [submission] = await ingest.records(SUBMITTED, 1)
        [scanned] = of(await events(ingest, 2), EventKind.SCANNED)
        assert scanned.classification == "unavailable"
        assert scanned.message_id == submission.id
        assert scanned.detail.startswith(f"ref {submission.id}; sent unscanned (on_failure")
        await ingest.stop()

        closed = await start_ingest(scanning=scanning(url, on_failure="closed"))
        code, text = await send(closed, CLEAN)
        assert (code, text) == (451, "4.7.0 Content scanner unavailable, try again later")
        found = await closed.events(2)
        assert {(e.kind, e.check or e.classification) for e in found} >= {
            (EventKind.REJECTED, "rspamd_unavailable"),
        }


async def test_over_the_scan_limit_is_sent_unscanned_or_refused_per_policy(
    start_ingest: StartIngest, rspamd_url: str
) -> None:
    big = CLEAN.replace(b"See you at one.", b"\r\n".join([b"x" * 70] * 30))
    ingest = await start_ingest(scanning=scanning(rspamd_url, max_size="1KiB"))
    code, _ = await send(ingest, big)
    assert code == 250
    [scanned] = of(await events(ingest, 2), EventKind.SCANNED)
    assert scanned.classification == "skipped"
    assert "over the scan limit of 1024" in scanned.detail
    await ingest.stop()

    refusing = await start_ingest(
        scanning=scanning(rspamd_url, max_size="1KiB", over_size="refuse")
    )
    code, text = await send(refusing, big)
    assert (code, text) == (552, "5.3.4 Message too big for the content scanner")


@pytest.fixture
def second_rspamd() -> Iterator[tuple[str, Any]]:
    """An rspamd of this test's own (``deploy/local/rspamd.sh`` on the test port + 10), to
    be stopped mid-test; stopped after in any case. Started only where the shared one is
    (``rspamd_url``), so a machine without rspamd skips or fails the same way."""
    port = int(os.environ.get("POSTLINE_RSPAMD_PORT", "21333")) + 10
    env = {**os.environ, "POSTLINE_RSPAMD_PORT": str(port)}
    script = ROOT / "deploy" / "local" / "rspamd.sh"

    def run(verb: str) -> None:
        subprocess.run(["bash", str(script), verb], env=env, check=True, capture_output=True)

    run("up")
    try:
        yield f"http://127.0.0.1:{port}", run
    finally:
        run("down")


async def test_rspamd_stopped_mid_test_fails_open_and_nothing_is_lost(
    start_ingest: StartIngest, rspamd_url: str, second_rspamd: tuple[str, Any]
) -> None:
    url, run = second_rspamd
    ingest = await start_ingest(scanning=scanning(url))
    before = await send(ingest, CLEAN)
    run("down")
    after = await send(ingest, CLEAN)
    assert (before[0], after[0]) == (250, 250)
    ids = [text.rpartition(" ")[2] for _, text in (before, after)]  # "... queued as <id>"
    assert sorted(s.id for s in await ingest.records(SUBMITTED, 2)) == sorted(ids)
    scanned = {
        e.message_id: e.classification for e in of(await events(ingest, 4), EventKind.SCANNED)
    }
    assert scanned == {ids[0]: "clean", ids[1]: "unavailable"}
    assert ingest.stage.core.metrics.scans.labels("unavailable")._value.get() == 1

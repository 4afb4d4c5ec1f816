"""The signer stage end to end on the embedded bus, through shared.runtime.batch.run_batch_loop.

Submissions go in on postline.submitted; the test reads postline.outbound and
postline.events as a fresh consumer group would, and verifies every signature with dkimpy
against keys served by a real DNS server on loopback.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from services.signer.keys import KeyStore
from services.signer.sevenbit import to_7bit
from services.signer.stage import GROUP, SignerStage, create
from shared.bus.base import BusMessage
from shared.bus.embedded import EmbeddedBus
from shared.config import load_config
from shared.runtime.stage import StageContext
from shared.wire.records import (
    ClientInfo,
    Delivery,
    Event,
    EventKind,
    Submission,
    Suppression,
    SuppressionReason,
    Tenant,
    TenantSettings,
    new_id,
)
from shared.wire.tokens import parse_tracking_token, parse_unsubscribe_token, parse_verp
from shared.wire.topics import (
    DEAD,
    EVENTS,
    OUTBOUND,
    OUTBOUND_BULK,
    QUEUE,
    SUBMITTED,
    SUPPRESSIONS,
    TENANTS,
    retry_topic,
)
from testing import eventschema
from testing.dnsserver import DnsServer
from testing.stage import stage_context
from tests.services.signer.conftest import SECRET, add_key, dns_records, verify

DEADLINE = 15.0
BODY = b"Hello,\r\n\r\nthis is the message body \xe2\x80\x94 with 8-bit text.\r\n"


def message(sender: str = "alice@example.test", extra: bytes = b"") -> bytes:
    return (
        f"From: Alice <{sender}>\r\nTo: undisclosed-recipients:;\r\n".encode()
        + b"Subject: Quarterly news\r\nMessage-ID: <x@example.test>\r\n"
        + extra
        + b"\r\n"
        + BODY
    )


def submission(
    rcpts: tuple[str, ...], data: bytes | None = None, user: str = "app", **fields: object
) -> Submission:
    return Submission(
        id=fields.pop("id", new_id()),  # type: ignore[arg-type]
        received_at=1_000.0,
        client=ClientInfo(ip="127.0.0.1", auth_user=user),
        mail_from="alice@example.test",
        rcpt_to=rcpts,
        data=data if data is not None else message(),
        **fields,  # type: ignore[arg-type]
    )


class Harness:
    """A running signer stage and the bus it reads."""

    def __init__(self, bus: EmbeddedBus, ctx: StageContext, stage: SignerStage) -> None:
        self.bus = bus
        self.ctx = ctx
        self.stage = stage

    async def submit(self, *subs: Submission) -> None:
        await self.bus.publish([SUBMITTED.out(s) for s in subs])

    async def read(self, topic: str) -> list[BusMessage]:
        consumer = self.bus.consumer(f"check-{uuid.uuid4().hex}", [topic])
        await consumer.start()
        try:
            found: list[BusMessage] = []
            while batch := await consumer.fetch(500, 0.1):
                found += batch
            return found
        finally:
            await consumer.stop()

    async def events(self, count: int) -> list[Event]:
        """Wait for at least ``count`` events."""
        loop = asyncio.get_running_loop()
        end = loop.time() + DEADLINE
        while len(found := await self.read(EVENTS.name)) < count:
            assert loop.time() < end, f"{len(found)} events, wanted {count}"
            await asyncio.sleep(0.05)
        events = [EVENTS.decode(m.value) for m in found if m.value is not None]
        eventschema.assert_published(events)  # the signer's own, as docs/events.md has them
        return events

    async def deliveries(self) -> list[Delivery]:
        """Every Delivery made, in both lanes."""
        return await self.lane(OUTBOUND.name) + await self.lane(OUTBOUND_BULK.name)

    async def lane(self, topic: str) -> list[Delivery]:
        """The Deliveries on one outbound topic."""
        return [OUTBOUND.decode(m.value) for m in await self.read(topic) if m.value]

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.ctx.registry.get_sample_value(name, labels or {}) or 0.0


@asynccontextmanager
async def running(
    tmp_path: Path,
    keys_dir: Path,
    settings: str = "",
    suppressed: tuple[str, ...] = (),
    *,
    scoped: tuple[tuple[str, str], ...] = (),
    unsubscribe_url: str = "https://mail.example.test/unsubscribe/",
    tenants: tuple[Tenant, ...] = (),
) -> AsyncIterator[Harness]:
    """A started signer; ``suppressed`` addresses are suppressed globally, ``scoped``
    (address, sender domain) pairs only for that domain (an unsubscribe); ``tenants`` are
    on the tenant table before it starts."""
    secret = tmp_path / "verp.key"
    secret.write_bytes(SECRET)
    config_file = tmp_path / "postline.toml"
    config_file.write_text(
        f'[embedded]\npath = "{tmp_path / "bus.db"}"\npartitions = 2\n\n'
        f'[signer]\nkeys_dir = "{keys_dir}"\nsecret_file = "{secret}"\n'
        'bounce_domain = "bounces.example.test"\nworkers = 1\n'
        f'unsubscribe_url = "{unsubscribe_url}"\n' + settings
    )
    config = load_config(config_file, environ={})
    bus = EmbeddedBus(config.core.embedded)
    await bus.start()
    await bus.publish(
        [
            SUPPRESSIONS.out(Suppression(address=a, reason=SuppressionReason.HARD_BOUNCE, at=1.0))
            for a in suppressed
        ]
        + [
            SUPPRESSIONS.out(
                Suppression(address=a, reason=SuppressionReason.UNSUBSCRIBE, at=1.0, scope=d)
            )
            for a, d in scoped
        ]
        + [TENANTS.out(tenant) for tenant in tenants]
    )
    ctx = stage_context("signer", config, bus, instance="t1")
    stage = await create(ctx)
    task = asyncio.create_task(stage.run(ctx))
    try:
        await asyncio.wait_for(ctx.wait_ready(), DEADLINE)
        yield Harness(bus, ctx, stage)
    finally:
        ctx.stopping.set()
        await asyncio.wait_for(task, DEADLINE)
        await bus.close()


def kinds(events: list[Event]) -> list[str]:
    return sorted(e.kind.value for e in events)


async def test_signs_fans_out_with_verp_and_drops_suppressed(
    tmp_path: Path, keys_dir: Path, store: KeyStore
) -> None:
    sub = submission(("bob@one.test", "carol@one.test", "gone@two.test", "dave@two.test"))
    async with running(tmp_path, keys_dir, suppressed=("gone@two.test",)) as signer:
        await signer.submit(sub)
        events = await signer.events(2)
        made = await signer.deliveries()
        assert signer.metric("postline_signer_messages_total", {"result": "signed"}) == 1
        assert signer.metric("postline_signer_signatures_total", {"algorithm": "ed25519"}) == 1
        assert signer.metric("postline_signer_suppressed_recipients_total") == 1
    assert kinds(events) == ["signed", "suppressed"]
    suppressed = next(e for e in events if e.kind is EventKind.SUPPRESSED)
    assert (suppressed.recipient, suppressed.domain) == ("gone@two.test", "two.test")
    assert sorted(d.rcpt_to for d in made) == [
        ("bob@one.test",),
        ("carol@one.test",),
        ("dave@two.test",),
    ]
    async with DnsServer(dns_records(store)) as dns:
        for delivery in made:
            token = parse_verp(delivery.mail_from, SECRET)
            assert (token.message_id, token.recipient) == (sub.id, delivery.rcpt_to[0])
            # Signatures prepended to the message made 7-bit (sevenbit.py), nothing else.
            assert delivery.data.endswith(to_7bit(sub.data).data)
            assert await verify(delivery.data, dns.port, 0)  # RSA
            assert await verify(delivery.data, dns.port, 1)  # Ed25519
    # The same signed bytes for every copy: non-bulk mail is signed once.
    assert len({d.data for d in made}) == 1


async def test_verp_off_one_delivery_per_domain(tmp_path: Path, keys_dir: Path) -> None:
    sub = submission(("bob@one.test", "carol@one.test", "dave@two.test"))
    async with running(tmp_path, keys_dir, "verp = false\n") as signer:
        await signer.submit(sub)
        await signer.events(1)
        made = await signer.deliveries()
    assert sorted((d.domain, d.rcpt_to, d.mail_from) for d in made) == [
        ("one.test", ("bob@one.test", "carol@one.test"), "alice@example.test"),
        ("two.test", ("dave@two.test",), "alice@example.test"),
    ]


async def test_bulk_gets_signed_one_click_unsubscribe_per_recipient(
    tmp_path: Path, keys_dir: Path, store: KeyStore
) -> None:
    sub = submission(("bob@one.test", "carol@two.test"), tags={"bulk": "yes"})
    async with running(tmp_path, keys_dir) as signer:
        await signer.submit(sub)
        await signer.events(1)
        made = await signer.deliveries()
    assert len(made) == 2
    async with DnsServer(dns_records(store)) as dns:
        for delivery in made:
            assert delivery.bulk
            head = delivery.data.split(b"\r\n\r\n", 1)[0].decode()
            assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in head
            token = head.split("https://mail.example.test/unsubscribe/", 1)[1].split(">", 1)[0]
            parsed = parse_unsubscribe_token(SECRET, token)
            assert (parsed.recipient, parsed.scope) == (delivery.rcpt_to[0], "example.test")
            assert await verify(delivery.data, dns.port)
            # Both fields are covered: changing the URL or dropping one-click breaks it.
            forged = delivery.data.replace(token.encode(), token[:-2].encode() + b"xx")
            assert not await verify(forged, dns.port)
            stripped = delivery.data.replace(
                b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", b""
            )
            assert not await verify(stripped, dns.port)


async def test_no_key_fails_with_an_event_unless_a_fallback_exists(
    tmp_path: Path, keys_dir: Path, store: KeyStore
) -> None:
    orphan = submission(("bob@one.test",), message("x@other.test"), user="nobody")
    fallback = submission(("bob@one.test",), message("x@other.test"), user="app")
    settings = 'user_signing_domains = { app = "example.test" }\n'
    async with running(tmp_path, keys_dir, settings) as signer:
        await signer.submit(orphan, fallback)
        events = await signer.events(2)
        made = await signer.deliveries()
        assert signer.metric("postline_signer_messages_total", {"result": "failed"}) == 1
    failed = next(e for e in events if e.kind is EventKind.FAILED)
    assert failed.message_id == orphan.id
    assert "no DKIM key for other.test" in failed.detail
    assert [d.message_id for d in made] == [fallback.id]
    assert b"d=example.test" in made[0].data
    async with DnsServer(dns_records(store)) as dns:
        assert await verify(made[0].data, dns.port)


async def test_allow_unsigned_sends_without_signature(tmp_path: Path, keys_dir: Path) -> None:
    sub = submission(("bob@one.test",), message("x@other.test"))
    async with running(tmp_path, keys_dir, "allow_unsigned = true\n") as signer:
        await signer.submit(sub)
        await signer.events(1)
        made = await signer.deliveries()
        assert signer.metric("postline_signer_messages_total", {"result": "unsigned"}) == 1
    assert [d.data for d in made] == [to_7bit(sub.data).data]


async def test_suppression_added_while_running_applies(tmp_path: Path, keys_dir: Path) -> None:
    async with running(tmp_path, keys_dir) as signer:
        await signer.bus.publish(
            [
                SUPPRESSIONS.out(
                    Suppression(
                        address="late@one.test",
                        reason=SuppressionReason.COMPLAINT,
                        at=2.0,
                        scope="example.test",
                    )
                )
            ]
        )
        loop = asyncio.get_running_loop()
        end = loop.time() + DEADLINE
        suppressions = signer.stage.suppressions
        while not suppressions.is_suppressed("late@one.test", sender_domain="example.test"):
            assert loop.time() < end
            await asyncio.sleep(0.02)
        # Scoped to the sender domain: it applies to bulk mail (see the scoped test below).
        await signer.submit(submission(("late@one.test",), tags={"bulk": "yes"}))
        events = await signer.events(1)
        made = await signer.deliveries()
    assert kinds(events) == ["suppressed"]
    assert made == []


async def test_unusable_submission_is_dead_lettered(tmp_path: Path, keys_dir: Path) -> None:
    bad = submission(("bob@one.test",), id="not-hex")
    good = submission(("bob@one.test",))
    async with running(tmp_path, keys_dir) as signer:
        await signer.submit(bad, good)
        await signer.events(1)
        dead = [DEAD.decode(m.value) for m in await signer.read(DEAD.name) if m.value]
        made = await signer.deliveries()
    assert [d.reason for d in dead] == ["poison: submission id 'not-hex' is not 32 hex digits"]
    assert dead[0].group == GROUP
    assert [d.message_id for d in made] == [good.id]


async def test_message_without_from_fails_with_an_event(tmp_path: Path, keys_dir: Path) -> None:
    settings = 'signing_domain = "example.test"\n'
    sub = submission(("bob@one.test",), b"Subject: no from\r\n\r\nbody\r\n")
    async with running(tmp_path, keys_dir, settings) as signer:
        await signer.submit(sub)
        events = await signer.events(1)
    assert [(e.kind, e.check) for e in events] == [(EventKind.FAILED, "dkim")]
    assert "no From header" in events[0].detail


@pytest.mark.parametrize("count", [30])
async def test_many_messages_each_exactly_once(tmp_path: Path, keys_dir: Path, count: int) -> None:
    subs = [submission((f"r{i}@one.test",)) for i in range(count)]
    async with running(tmp_path, keys_dir) as signer:
        await signer.submit(*subs)
        await signer.events(count)
        made = await signer.deliveries()
    assert sorted(d.message_id for d in made) == sorted(s.id for s in subs)


async def test_keys_added_while_running_are_used_without_restart(
    tmp_path: Path, keys_dir: Path
) -> None:
    async with running(tmp_path, keys_dir, 'key_reload_interval = "0.1s"\n') as signer:
        add_key(keys_dir, "second.test", "s1", "ed25519")
        loop = asyncio.get_running_loop()
        end = loop.time() + DEADLINE
        while not signer.stage.store.keys_of("second.test"):
            assert loop.time() < end, "new key not picked up"
            await asyncio.sleep(0.05)
        labels = {"signing_domain": "second.test", "selector": "s1", "algorithm": "ed25519"}
        age = signer.ctx.registry.get_sample_value("postline_signer_key_age_seconds", labels)
        assert age is not None and age >= 0
        await signer.submit(submission(("bob@one.test",), message("x@second.test")))
        await signer.events(1)
        made = await signer.deliveries()
    assert b"d=second.test" in made[0].data
    async with DnsServer(dns_records(signer.stage.store)) as dns:
        assert await verify(made[0].data, dns.port)


async def test_a_scoped_unsubscribe_drops_bulk_mail_only(tmp_path: Path, keys_dir: Path) -> None:
    # Issue 11: ingest refused transactional mail at RCPT for an unsubscribe from bulk mail.
    rcpts = ("unsub@one.test", "bob@one.test")
    receipt = submission(rcpts)  # transactional: a password reset, a receipt
    news = submission(rcpts, tags={"bulk": "yes"})
    unsub = (("unsub@one.test", "example.test"),)
    async with running(tmp_path, keys_dir, scoped=unsub) as signer:
        await signer.submit(receipt, news)
        events = await signer.events(3)
        made = await signer.deliveries()
    assert sorted((d.message_id, d.rcpt_to) for d in made) == sorted(
        [
            (receipt.id, ("unsub@one.test",)),
            (receipt.id, ("bob@one.test",)),
            (news.id, ("bob@one.test",)),
        ]
    )
    [dropped] = [e for e in events if e.kind is EventKind.SUPPRESSED]
    assert (dropped.message_id, dropped.recipient, dropped.bulk) == (
        news.id,
        "unsub@one.test",
        True,
    )


async def test_the_signed_event_says_whether_the_mail_is_bulk(
    tmp_path: Path, keys_dir: Path
) -> None:
    receipt = submission(("bob@one.test",))
    news = submission(("bob@one.test",), tags={"bulk": "yes"})
    async with running(tmp_path, keys_dir) as signer:
        await signer.submit(receipt, news)
        events = await signer.events(2)
    signed = {e.message_id: e for e in events if e.kind is EventKind.SIGNED}
    assert (signed[receipt.id].bulk, signed[news.id].bulk) == (False, True)
    assert "List-Unsubscribe" not in signed[news.id].detail


async def test_bulk_without_an_unsubscribe_url_is_said_at_start_and_in_the_event(
    tmp_path: Path, keys_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    news = submission(("bob@one.test",), tags={"bulk": "yes"})
    with caplog.at_level(logging.WARNING, logger="postline.signer"):
        async with running(tmp_path, keys_dir, unsubscribe_url="") as signer:
            warned = [r.getMessage() for r in caplog.records if r.name == "postline.signer"]
            await signer.submit(news)
            [event] = await signer.events(1)
            [delivery] = await signer.deliveries()
    assert warned == [
        "signer.unsubscribe_url is not set: bulk mail goes out without List-Unsubscribe "
        "unless the sender set its own"
    ]
    assert b"List-Unsubscribe" not in delivery.data.split(b"\r\n\r\n", 1)[0]
    assert (event.kind, event.bulk) == (EventKind.SIGNED, True)
    assert event.detail.endswith(
        "; bulk without List-Unsubscribe: signer.unsubscribe_url is not set"
    )


async def test_bulk_mail_takes_the_bulk_lane_and_the_signed_event_says_why(
    tmp_path: Path, keys_dir: Path
) -> None:
    receipt = submission(("bob@one.test",))
    tagged = submission(("bob@one.test",), tags={"bulk": "yes"})
    listed = submission(("bob@one.test",), message(extra=b"Precedence: list\r\n"))
    own = b"List-Unsubscribe: <mailto:leave@example.test>\r\n"
    unsubscribable = submission(("bob@one.test", "carol@one.test"), message(extra=own))
    news = (tagged, listed, unsubscribable)
    async with running(tmp_path, keys_dir) as signer:
        await signer.submit(receipt, *news)
        events = await signer.events(4)
        transactional = await signer.lane(OUTBOUND.name)
        bulk = await signer.lane(OUTBOUND_BULK.name)
    assert [(d.message_id, d.bulk) for d in transactional] == [(receipt.id, False)]
    assert sorted(d.message_id for d in bulk) == sorted(s.id for s in news for _ in s.rcpt_to)
    assert all(d.bulk for d in bulk)
    signed = {e.message_id: e.detail for e in events if e.kind is EventKind.SIGNED}
    assert "bulk" not in signed[receipt.id]
    assert signed[tagged.id].endswith("; bulk (tag)")
    assert signed[listed.id].endswith("; bulk (precedence)")
    assert signed[unsubscribable.id].endswith("; bulk (list-unsubscribe)")
    # The sender's own List-Unsubscribe is kept, and ours is not added beside it.
    for delivery in bulk:
        if delivery.message_id == unsubscribable.id:
            head = delivery.data.split(b"\r\n\r\n", 1)[0]
            assert head.count(b"List-Unsubscribe") == 1 and own.strip() in head


async def test_a_bulk_tenant_sends_all_its_mail_in_the_bulk_lane(
    tmp_path: Path, keys_dir: Path
) -> None:
    tenants = (Tenant(id="news", settings=TenantSettings(bulk=True)), Tenant(id="shop"))
    letter = submission(("bob@one.test",), tenant="news")
    receipt = submission(("bob@one.test",), tenant="shop")
    async with running(tmp_path, keys_dir, tenants=tenants) as signer:
        await signer.submit(letter, receipt)
        events = await signer.events(2)
        transactional = await signer.lane(OUTBOUND.name)
        bulk = await signer.lane(OUTBOUND_BULK.name)
    assert [d.message_id for d in transactional] == [receipt.id]
    assert [(d.message_id, d.bulk) for d in bulk] == [(letter.id, True)]
    head = bulk[0].data.split(b"\r\n\r\n", 1)[0]
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in head
    signed = {e.message_id: e for e in events if e.kind is EventKind.SIGNED}
    assert (signed[letter.id].bulk, signed[receipt.id].bulk) == (True, False)
    assert signed[letter.id].detail.endswith("; bulk (tenant)")


async def test_send_at_mail_is_signed_now_and_held_in_a_retry_tier(
    tmp_path: Path, keys_dir: Path
) -> None:
    send_at = time.time() + 3 * 3600
    later = submission(("bob@one.test", "dave@two.test"), send_at=send_at)
    now = submission(("bob@one.test",))
    async with running(tmp_path, keys_dir) as signer:
        await signer.submit(later, now)
        events = await signer.events(2)
        held = await signer.lane(retry_topic("2h").name)
        lane = await signer.deliveries()
        entries = [QUEUE.decode(m.value) for m in await signer.read(QUEUE.name) if m.value]
    assert [d.message_id for d in lane] == [now.id]  # only the message due now
    # The first pass of a 3 h wait is in the longest tier not longer than it (2h).
    assert sorted(d.domain for d in held) == ["one.test", "two.test"]
    for delivery in held:
        assert delivery.send_at == send_at and delivery.indexed
        assert delivery.not_before < send_at
        assert delivery.expires_at > send_at  # the age counts from the send-at
    assert sorted((e.domain, e.reason, e.next_attempt) for e in entries) == [
        ("one.test", "scheduled", send_at),
        ("two.test", "scheduled", send_at),
    ]
    signed = {e.message_id: e.detail for e in events if e.kind is EventKind.SIGNED}
    assert "held until" in signed[later.id] and "held until" not in signed[now.id]


TRACKING = '\n[signer.tracking]\nhost = "t.example.test"\n'
HTML_MESSAGE = (
    b"From: Alice <alice@example.test>\r\nTo: undisclosed-recipients:;\r\n"
    b"Subject: Offers\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/html; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    b'<html><body><p>Caf=E9: <a href=3D"https://shop.example.test/o?a=3D1&amp;b=3D2">'
    b'offer</a> <a href=3D"mailto:help@example.test">help</a></p></body></html>\r\n'
)


def html_of(data: bytes) -> str:
    """The quoted-printable Latin-1 body of a copy of HTML_MESSAGE, decoded."""
    return binascii.a2b_qp(data.partition(b"\r\n\r\n")[2]).decode("latin-1")


def tracked_urls(data: bytes) -> list[tuple[str, str]]:
    """(kind, token) of every tracking URL in a copy."""
    return re.findall(r"https://t\.example\.test/([co])/([A-Za-z0-9_-]+)", html_of(data))


async def test_tracked_bulk_mail_gets_rewritten_unsubscribable_copies_signed_after(
    tmp_path: Path, keys_dir: Path, store: KeyStore
) -> None:
    sub = submission(
        ("bob@one.test", "carol@two.test"),
        HTML_MESSAGE,
        tags={"bulk": "yes", "track": "opens,clicks"},
    )
    async with running(tmp_path, keys_dir, TRACKING) as signer:
        await signer.submit(sub)
        [signed] = await signer.events(1)
        made = await signer.deliveries()
        assert signer.metric("postline_signer_tracked_messages_total") == 1
        assert signer.metric("postline_signer_tracked_links_total") == 1
    assert signed.detail.endswith("; bulk (tag); tracked opens,clicks (1 link)")
    assert sorted(d.rcpt_to for d in made) == [("bob@one.test",), ("carol@two.test",)]
    async with DnsServer(dns_records(store)) as dns:
        for delivery in made:
            [(_, link), (_, pixel)] = tracked_urls(delivery.data)
            clicked = parse_tracking_token(SECRET, link)
            opened = parse_tracking_token(SECRET, pixel)
            assert (clicked.link, clicked.url) == (1, "https://shop.example.test/o?a=1&b=2")
            assert (opened.link, opened.url) == (0, "")
            assert clicked.recipient == opened.recipient == delivery.rcpt_to[0]
            assert clicked.message_id == sub.id
            assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in delivery.data
            assert '<p>Caf\u00e9: <a href="https://t.example.test/c/' in html_of(delivery.data)
            assert '<a href="mailto:help@example.test">help</a>' in html_of(delivery.data)
            assert await verify(delivery.data, dns.port, 0)
            assert await verify(delivery.data, dns.port, 1)


async def test_without_tracking_the_copy_is_the_submitted_bytes(
    tmp_path: Path, keys_dir: Path
) -> None:
    plain = submission(("bob@one.test", "carol@one.test"), HTML_MESSAGE)
    declined = submission(("dave@one.test",), HTML_MESSAGE, tags={"track": "none"})
    settings = TRACKING + "opens = true\nclicks = true\n"
    async with running(tmp_path, keys_dir) as signer:  # no [signer.tracking] at all
        await signer.submit(plain)
        await signer.events(1)
        untracked = await signer.deliveries()
    (tmp_path / "on").mkdir()
    async with running(tmp_path / "on", keys_dir, settings) as signer:
        await signer.submit(declined)
        [signed] = await signer.events(1)
        [declined_copy] = await signer.deliveries()
        assert signer.metric("postline_signer_tracked_messages_total") == 0
    assert len(untracked) == 2 and {d.data for d in untracked} == {untracked[0].data}
    assert all(d.data.endswith(HTML_MESSAGE) for d in untracked)
    assert b"DKIM-Signature" not in HTML_MESSAGE
    assert declined_copy.data.endswith(HTML_MESSAGE)
    assert "track" not in signed.detail


async def test_a_message_that_cannot_be_tracked_goes_untouched_with_an_event(
    tmp_path: Path, keys_dir: Path
) -> None:
    signed_mime = (
        b"From: Alice <alice@example.test>\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
        b'micalg=sha-256; boundary="s"\r\n\r\n--s\r\nContent-Type: text/html\r\n\r\n'
        b'<a href="https://shop.example.test/">x</a>\r\n--s\r\n'
        b"Content-Type: application/pkcs7-signature\r\n\r\nMIIB\r\n--s--\r\n"
    )
    sub = submission(("bob@one.test", "carol@one.test"), signed_mime, tags={"track": "clicks"})
    async with running(tmp_path, keys_dir, TRACKING) as signer:
        await signer.submit(sub)
        events = await signer.events(2)
        made = await signer.deliveries()
        skipped = {"reason": "signed_content"}
        assert signer.metric("postline_signer_tracking_skipped_total", skipped) == 1
    [tracking] = [e for e in events if e.kind is EventKind.TRACKING]
    assert (tracking.classification, tracking.check) == ("signed_content", "tracking")
    assert tracking.detail.startswith("sent without clicks tracking: the message has multipart")
    [signed] = [e for e in events if e.kind is EventKind.SIGNED]
    assert signed.detail.endswith("; not tracked (signed_content)")
    assert len({d.data for d in made}) == 1 and made[0].data.endswith(signed_mime)


async def test_tracking_on_without_a_host_warns_at_start(
    tmp_path: Path, keys_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sub = submission(("bob@one.test",), HTML_MESSAGE)
    with caplog.at_level(logging.WARNING):
        async with running(tmp_path, keys_dir, "\n[signer.tracking]\nopens = true\n") as signer:
            await signer.submit(sub)
            events = await signer.events(2)
            [copy] = await signer.deliveries()
    assert any("signer.tracking.host is not set" in r.getMessage() for r in caplog.records)
    [tracking] = [e for e in events if e.kind is EventKind.TRACKING]
    assert tracking.classification == "no_host"
    assert copy.data.endswith(HTML_MESSAGE)


async def test_ingest_events_carried_in_the_submission_go_out_first_and_once(
    tmp_path: Path, keys_dir: Path
) -> None:
    # Ingest hands off one record: its events ride in the Submission for the signer to
    # publish in the transaction that consumes it.
    sub = submission(("bob@one.test",))
    common: dict[str, Any] = {
        "message_id": sub.id,
        "at": 1_000.0,
        "stage": "ingest",
        "tenant": "default",
    }
    carried = (
        Event(kind=EventKind.ACCEPTED, recipients=1, recipient_domains=("one.test",), **common),
        Event(
            kind=EventKind.SUPPRESSED,
            recipient="gone@two.test",
            domain="two.test",
            check="suppression",
            **common,
        ),
    )
    async with running(tmp_path, keys_dir) as signer:
        await signer.submit(msgspec.structs.replace(sub, events=carried))
        await signer.events(3)
        await signer.submit(submission(("carol@one.test",)))  # a later batch: no repeat
        events = await signer.events(4)
    ours = [e for e in events if e.message_id == sub.id]
    assert [(e.kind, e.stage) for e in ours] == [
        (EventKind.ACCEPTED, "ingest"),
        (EventKind.SUPPRESSED, "ingest"),
        (EventKind.SIGNED, "signer"),
    ]
    assert tuple(ours[:2]) == carried

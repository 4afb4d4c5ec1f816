"""The queue tools on a running deliverer, on the embedded bus and on the real Kafka broker,
with the loopback DNS server and sink MX hosts: a deferred domain in ``postline queue
summary`` and ``list`` (the CLI's commands on the bus), flushed once its MX is back; a
suspended domain held without attempts (also by a replica started after the suspension) and
sent at the resume, or at the suspension's end; bounce and delete from the queue; a throttle
cancelled. The retry tiers here are long (1h): only an operator's action brings mail back
within a test."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from shared.bus.base import Bus
from shared.cli.queue import cmd_list, cmd_show, cmd_summary
from shared.cli.queue_control import cmd_act
from shared.config import BusConfig, Config, CoreConfig, EmbeddedConfig, KafkaConfig
from shared.errors import QueueNotFound
from shared.queue import actions, view
from shared.queue.actions import OPERATOR
from shared.wire.records import ControlVerb, EventKind, QueueEntry
from testing.dnsserver import LOOPBACKS, DnsServer, mx_records
from testing.smtpsink import SmtpSink, free_port
from tests.services.deliverer.harness import (
    BODY,
    Running,
    deliverer_section,
    delivery,
    running_deliverer,
)

MX = LOOPBACKS[0]
#: Deferred mail waits an hour: nothing comes back by itself during a test.
LONG = {"tiers": ["1s", "1h"], "first_delay": "1h", "max_delay": "1h"}


@pytest.fixture(
    params=["embedded", pytest.param("kafka", marks=[pytest.mark.kafka, pytest.mark.slow])]
)
def kafka(request: pytest.FixtureRequest, topic_prefix: str) -> KafkaConfig | None:
    """``None`` for the embedded bus, else the test broker with a prefix of its own."""
    if request.param == "embedded":
        return None
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    return KafkaConfig(bootstrap=bootstrap, topic_prefix=topic_prefix)


def cli_config(tmp_path: Path, kafka: KafkaConfig | None) -> Config:
    """The config the CLI would read: the harness's bus (its file, or the broker)."""
    if kafka is None:
        core = CoreConfig(embedded=EmbeddedConfig(path=tmp_path / "bus.db", partitions=2))
    else:
        core = CoreConfig(bus=BusConfig(kind="kafka"), kafka=kafka)
    return Config(core, "test.toml", {})


def section(dns: DnsServer, port: int, **overrides: Any) -> dict[str, Any]:
    return deliverer_section(dns, port, retry=LONG, queue_snapshot_interval="0.2s", **overrides)


async def wait_entries(bus: Bus, count: int, timeout: float = 30.0) -> list[QueueEntry]:
    """The index once it holds ``count`` entries."""
    deadline = time.monotonic() + timeout
    while len(entries := await view.read_entries(bus)) != count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(entries)} index entries, not {count}: {entries}")
        await asyncio.sleep(0.1)
    return entries


async def wait_applied(d: Running, verb: ControlVerb, timeout: float = 30.0) -> None:
    """Until the stage has an action of ``verb`` in force."""
    deadline = time.monotonic() + timeout
    while not d.stage.control.in_force(verb):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {verb} in force")
        await asyncio.sleep(0.02)


def held(d: Running) -> float:
    value = d.ctx.registry.get_sample_value(
        "postline_deliverer_held_total", {"reason": "suspended"}
    )
    return value or 0.0


async def act(bus: Bus, verb: ControlVerb, target: str, why: str = "") -> None:
    await actions.publish(bus, actions.request(verb, target, why=why), by="test", via="cli")


async def test_a_deferred_domain_is_in_the_summary_and_a_flush_delivers_it_once_its_mx_is_back(
    tmp_path: Path, kafka: KafkaConfig | None, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port(LOOPBACKS[:1])
    config = cli_config(tmp_path, kafka)
    async with (
        DnsServer({"down.test": [("SERVFAIL", "")]}) as dns,
        SmtpSink(MX, port) as sink,
        running_deliverer(tmp_path, section(dns, port), kafka=kafka) as d,
    ):
        sent = delivery("a@down.test", "b@down.test", sender="app@shop.test", tenant="shop")
        await d.send(sent)
        await d.wait_events(EventKind.DEFERRED, 2, timeout=60)
        (entry,) = await wait_entries(d.bus, 1)
        assert (entry.message_id, entry.domain, entry.reason) == (
            sent.message_id,
            "down.test",
            "deferred",
        )
        assert (entry.attempt, entry.tier, entry.tenant) == (1, "postline.retry.1h", "shop")
        assert entry.next_attempt - time.time() > 3000  # an hour away
        assert "SERVFAIL" in entry.detail  # the cause in words
        summary = view.summary([entry], [])
        assert [(r.name, r.deferred, r.total) for r in summary.rows] == [
            ("down.test", {"1h": 1}, 1)
        ]

        assert await cmd_summary(argparse.Namespace(by="domain", top=0, json=False), config) == 0
        table = capsys.readouterr().out
        assert "down.test" in table and "SERVFAIL" in table
        listing = argparse.Namespace(domain="down.test", tenant="", deferred=True, json=False)
        assert await cmd_list(listing, config) == 0
        mailq = capsys.readouterr().out
        assert sent.message_id in mailq and "a@down.test" in mailq and "b@down.test" in mailq
        show = argparse.Namespace(id=sent.message_id[:10], body=False, json=False)
        assert await cmd_show(show, config) == 0
        shown = capsys.readouterr().out
        assert "Subject: test" in shown and "attempts    1" in shown
        postcat = argparse.Namespace(id=sent.delivery_id, body=True, json=False)
        assert await cmd_show(postcat, config) == 0
        assert capsys.readouterr().out.replace("\r\n", "\n") == BODY.decode().replace("\r\n", "\n")

        for name, rrs in mx_records("down.test", (10, MX)).items():
            dns.set(name, rrs)  # the MX is back
        flush = argparse.Namespace(target="domain:down.test", verb=ControlVerb.QUEUE_FLUSH)
        assert await cmd_act(flush, config) == 0
        delivered = await d.wait_events(EventKind.DELIVERED, 2, timeout=60)
        assert {e.attempt for e in delivered} == {2}
        await d.settle(timeout=60)
        assert await wait_entries(d.bus, 0) == []
    assert sorted(sink.recipients()) == ["a@down.test", "b@down.test"]


async def test_unknown_ids_and_domains_are_refused_by_name(
    tmp_path: Path, kafka: KafkaConfig | None
) -> None:
    config = cli_config(tmp_path, kafka)
    async with (
        DnsServer({}) as dns,
        running_deliverer(tmp_path, section(dns, free_port()), kafka=kafka),
    ):
        bounce = argparse.Namespace(
            target="0123456789abcdef", verb=ControlVerb.QUEUE_BOUNCE, why="", yes=False
        )
        with pytest.raises(QueueNotFound, match="no queued message '0123456789abcdef'"):
            await cmd_act(bounce, config)
        flush = argparse.Namespace(target="domain:nowhere.test", verb=ControlVerb.QUEUE_FLUSH)
        with pytest.raises(QueueNotFound, match=r"nothing queued for domain:nowhere\.test"):
            await cmd_act(flush, config)
        show = argparse.Namespace(id="feedfacefeed", body=False, json=False)
        with pytest.raises(QueueNotFound):
            await cmd_show(show, config)


async def test_a_suspended_domain_is_held_also_by_a_new_replica_and_sent_at_the_resume(
    tmp_path: Path, kafka: KafkaConfig | None
) -> None:
    async def suspended_before_start(bus: Bus) -> None:
        await act(bus, ControlVerb.QUEUE_SUSPEND, "domain:held.test", why="their MX is migrating")

    records = mx_records("held.test", (10, MX)) | mx_records("free.test", (10, MX))
    async with DnsServer(records) as dns, SmtpSink(MX) as sink:
        settings = section(dns, sink.port, suspended_hold="1h")
        async with running_deliverer(
            tmp_path, settings, kafka=kafka, before=suspended_before_start
        ) as d:
            await d.send(delivery("a@held.test"), delivery("b@held.test"), delivery("c@free.test"))
            await d.wait_events(EventKind.DELIVERED, 1, timeout=60)
            entries = await wait_entries(d.bus, 2)
            assert {e.reason for e in entries} == {"suspended"}
            assert all("domain:held.test" in e.detail for e in entries)
            assert held(d) == 2
            assert sink.recipients() == ["c@free.test"]
            assert not d.of(EventKind.DEFERRED)  # a hold is not an attempt
            await actions.publish_resume(d.bus, "domain:held.test", by="test", via="cli")
            delivered = await d.wait_events(EventKind.DELIVERED, 3, timeout=60)
            await d.settle(timeout=60)
            assert await wait_entries(d.bus, 0) == []
            assert not d.stage.control.in_force(ControlVerb.QUEUE_SUSPEND)
    assert sorted(sink.recipients()) == ["a@held.test", "b@held.test", "c@free.test"]
    assert {e.attempt for e in delivered} == {1}


async def test_a_suspension_with_an_end_releases_its_mail_by_itself(
    tmp_path: Path, kafka: KafkaConfig | None
) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("held.test", (10, MX))) as dns,
        SmtpSink(MX, port) as sink,
        running_deliverer(tmp_path, section(dns, port, suspended_hold="1h"), kafka=kafka) as d,
    ):
        asked = actions.request(ControlVerb.QUEUE_SUSPEND, "tenant:shop", lasting="3s")
        await actions.publish(d.bus, asked, by="test", via="cli")
        await wait_applied(d, ControlVerb.QUEUE_SUSPEND)
        await d.send(delivery("a@held.test", tenant="shop"))
        await wait_entries(d.bus, 1)
        assert not sink.messages
        (sent,) = await d.wait_events(EventKind.DELIVERED, 1, timeout=60)
    assert sent.at >= asked.until  # not before the suspension ended
    assert held(d) == 1


async def test_bounce_and_delete_from_the_queue_end_the_mail_with_their_events(
    tmp_path: Path, kafka: KafkaConfig | None
) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer({"down.test": [("SERVFAIL", "")]}) as dns,
        running_deliverer(tmp_path, section(dns, port), kafka=kafka) as d,
    ):
        first = delivery("a@down.test", sender="app@shop.test")
        second = delivery("b@down.test", sender="app@shop.test")
        await d.send(first, second)
        await wait_entries(d.bus, 2)
        await act(d.bus, ControlVerb.QUEUE_BOUNCE, f"message:{first.message_id}", why="spam run")
        (bounced,) = await d.wait_events(EventKind.BOUNCED, 1, timeout=60)
        await act(d.bus, ControlVerb.QUEUE_DELETE, f"message:{second.message_id}")
        (deleted,) = await d.wait_events(EventKind.DELETED, 1, timeout=60)
        await d.settle(timeout=60)
        assert await wait_entries(d.bus, 0) == []
    assert (bounced.recipient, bounced.classification, bounced.sender) == (
        "a@down.test",
        OPERATOR,
        "app@shop.test",
    )
    assert str(bounced.reply) == "550 5.0.0 bounced by the operator: spam run"
    assert bounced.headers.startswith(b"From: ")  # the bouncer's DSN quotes them
    assert (deleted.recipient, deleted.classification, deleted.headers) == (
        "b@down.test",
        OPERATOR,
        b"",
    )


async def test_a_throttle_cancel_and_a_flush_send_a_throttled_domains_mail_at_once(
    tmp_path: Path, kafka: KafkaConfig | None
) -> None:
    async with DnsServer(mx_records("busy.test", (10, MX))) as dns, SmtpSink(MX) as sink:
        settings = section(dns, sink.port, throttling={"backoff": "1h", "max_backoff": "1h"})
        async with running_deliverer(tmp_path, settings, kafka=kafka) as d:
            sink.script_rcpt("a@busy.test", "421 4.7.0 Try again later")
            await d.send(delivery("a@busy.test"))
            await d.wait_events(EventKind.THROTTLED, 1, timeout=60)
            await d.send(delivery("b@busy.test"))
            entries = await wait_entries(d.bus, 2)
            assert sorted(e.reason for e in entries) == ["deferred", "throttled"]
            await act(d.bus, ControlVerb.THROTTLE_CANCEL, "domain:busy.test")
            await act(d.bus, ControlVerb.QUEUE_FLUSH, "domain:busy.test")
            await d.wait_events(EventKind.DELIVERED, 2, timeout=60)
            await d.settle(timeout=60)
            changes = d.ctx.registry.get_sample_value(
                "postline_deliverer_throttle_changes_total",
                {"provider": "other", "action": "cancel"},
            )
    assert changes == 1
    assert sorted(sink.recipients()) == ["a@busy.test", "b@busy.test"]


async def wait_until(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_mail_waiting_in_a_window_is_suspended_or_bounced_there_and_the_live_state_shows_it(
    tmp_path: Path, kafka: KafkaConfig | None
) -> None:
    records = mx_records("slow.test", (10, MX)) | mx_records("gone.test", (10, MX))
    async with DnsServer(records) as dns, SmtpSink(MX) as sink:
        one = {"max_connections": 1}
        settings = section(
            dns, sink.port, suspended_hold="1h", domains={"slow.test": one, "gone.test": one}
        )
        async with running_deliverer(tmp_path, settings, kafka=kafka) as d:
            sink.data_delay = 3.0  # the first transaction of each domain holds its connection
            slow = [delivery(f"{c}@slow.test", tenant="shop") for c in "abc"]
            gone = [delivery(f"{c}@gone.test") for c in "xyz"]
            await d.send(*slow, *gone)
            await wait_until(lambda: sink.in_data == 2, "a transaction to each domain")
            current = time.time()
            snapshots: list[Any] = []

            async def both_in_window() -> bool:
                snapshots[:] = await view.read_snapshots(d.bus, time.time())
                loads = {
                    (load.domain, load.window, load.in_flight)
                    for s in snapshots
                    for load in s.loads
                }
                return {("slow.test", 2, 1), ("gone.test", 2, 1)} <= loads

            deadline = time.monotonic() + 30
            while not await both_in_window():
                assert time.monotonic() < deadline, snapshots
                await asyncio.sleep(0.1)
            summary = view.summary([], snapshots)
            (slow_row,) = [r for r in summary.rows if r.name == "slow.test"]
            assert (slow_row.window, slow_row.in_flight, slow_row.total) == (2, 1, 3)
            assert current - 60 < slow_row.oldest <= current

            await act(d.bus, ControlVerb.QUEUE_SUSPEND, "domain:slow.test")
            await act(d.bus, ControlVerb.QUEUE_BOUNCE, "domain:gone.test", why="domain sold")
            bounced = await d.wait_events(EventKind.BOUNCED, 2, timeout=60)
            await wait_until(lambda: held(d) == 2, "the two queued slow.test jobs held")
            delivered = await d.wait_events(EventKind.DELIVERED, 2, timeout=60)  # in flight
            await d.settle(timeout=60)
            entries = await wait_entries(d.bus, 2)
    assert sorted(e.recipient for e in delivered) == ["a@slow.test", "x@gone.test"]
    assert sorted(e.recipient for e in bounced) == ["y@gone.test", "z@gone.test"]
    assert {e.classification for e in bounced} == {OPERATOR}
    assert sorted(r for e in entries for r in e.recipients) == ["b@slow.test", "c@slow.test"]
    assert {e.reason for e in entries} == {"suspended"}


def operator_count(d: Running, action: str) -> float:
    value = d.ctx.registry.get_sample_value(
        "postline_deliverer_queue_operator_total", {"action": action}
    )
    return value or 0.0


async def test_a_message_bounce_reads_only_its_domains_partitions_a_tenant_bounce_them_all(
    tmp_path: Path, kafka: KafkaConfig | None
) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer({"a.test": [("SERVFAIL", "")]}) as dns,
        running_deliverer(tmp_path, section(dns, port), kafka=kafka) as d,
    ):
        tier = "postline.retry.1h"
        home = await d.bus.partition_of(tier, b"a.test")
        others = [f"b{i}.test" for i in range(40)]
        apart = [n for n in others if await d.bus.partition_of(tier, n.encode()) != home]
        dns.set(apart[0], [("SERVFAIL", "")])  # every attempt is deferred
        bystander = delivery(f"x@{apart[0]}", tenant="shop")
        target = delivery("y@a.test", tenant="shop")
        await d.send(bystander)
        await wait_entries(d.bus, 1)
        await d.send(target)  # behind the bystander in time, in its own partition
        await wait_entries(d.bus, 2)
        domains = ("a.test",)
        asked = actions.request(
            ControlVerb.QUEUE_BOUNCE, f"message:{target.message_id}", domains=domains
        )
        await actions.publish(d.bus, asked, by="test", via="cli")
        (bounced,) = await d.wait_events(EventKind.BOUNCED, 1, timeout=60)
        assert bounced.recipient == "y@a.test"
        assert operator_count(d, "rewritten") == 0  # the bystander's partition was not read
        await act(d.bus, ControlVerb.QUEUE_DELETE, "tenant:shop")
        (deleted,) = await d.wait_events(EventKind.DELETED, 1, timeout=60)
        await d.settle(timeout=60)
        assert await wait_entries(d.bus, 0) == []
    assert deleted.recipient == bystander.rcpt_to[0]

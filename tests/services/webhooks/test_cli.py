"""``postline webhooks`` on both buses (Kafka and the embedded one), as an operator runs it:
add (the secret once, sealed on the record), set, list, test (a signed request to a real
HTTPS receiver), pause and resume (with their webhook events), replay (the same event ids
onto the first tier), redrive (a dead-lettered delivery back with its age reset), and
private URLs refused."""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from pathlib import Path

import pytest

from services.webhooks.main import STAGE
from services.webhooks.retry import RETRY_GROUP
from services.webhooks.signing import verify
from shared import tenant_admin
from shared.bus.base import Bus
from shared.cli.parser import build_parser
from shared.cli.tenant import client_bus
from shared.config import Config, load_config
from shared.errors import WebhookRefused
from shared.wire.eventjson import event_id
from shared.wire.records import DeadLetter, Event, EventKind, WebhookAttempt
from shared.wire.topics import DEAD, EVENTS, webhook_retry_topic
from testing.pki import make_pki
from testing.webhooks import Receiver


@pytest.fixture(params=[pytest.param("kafka", marks=pytest.mark.kafka), "embedded"])
def bus_section(request: pytest.FixtureRequest, tmp_path: Path, topic_prefix: str) -> str:
    """The config's bus: the test broker under the test's own prefix, or a SQLite file."""
    if request.param == "kafka":
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        return (
            f'[bus]\nkind = "kafka"\n[kafka]\nbootstrap = "{bootstrap}"\n'
            f'topic_prefix = "{topic_prefix}"\n'
        )
    return f'[embedded]\npath = "{tmp_path / "bus.db"}"\n'


def _config(tmp_path: Path, ca: Path, bus_section: str) -> Config:
    (tmp_path / "kek.key").write_text("22" * 32)
    path = tmp_path / "postline.toml"
    path.write_text(
        bus_section
        + f"""
[secrets]
kek_file = "{tmp_path / "kek.key"}"
[webhooks]
ca_file = "{ca}"
allow_private_networks = true
tiers = ["1s", "3s"]
"""
    )
    return load_config(path, environ={})


def run(config: Config, *argv: str) -> int:
    parser = build_parser([STAGE], lambda _args: 0)
    args: argparse.Namespace = parser.parse_args(["webhooks", *argv])
    return int(asyncio.run(args.handler(args, config)))


def bus(config: Config) -> Bus:
    return client_bus(config)


async def _tenant(config: Config, tenant: str) -> None:
    b = bus(config)
    await b.start()
    try:
        await tenant_admin.ensure_topics(b)
        await tenant_admin.add(b, tenant, by="test")
    finally:
        await b.close()


def test_add_list_test_pause_resume(
    tmp_path: Path, bus_section: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = make_pki(tmp_path / "pki")
    config = _config(tmp_path, pki.ca, bus_section)
    asyncio.run(_tenant(config, "acme"))

    async def with_receiver() -> tuple[str, str, Receiver]:
        async with Receiver(pki) as receiver:
            code = await asyncio.to_thread(
                run, config, "add", "acme", receiver.url("hook"), "--kind", "bounced"
            )
            assert code == 0
            out = capsys.readouterr().out
            endpoint = re.search(r"endpoint (wh_[0-9a-f]{12}) added", out)
            secret = re.search(r"(whsec_\S+)", out)
            assert endpoint and secret
            assert await asyncio.to_thread(run, config, "test", "acme", endpoint[1]) == 0
            return endpoint[1], secret[1], receiver

    endpoint, secret, receiver = asyncio.run(with_receiver())
    (request,) = receiver.behaviour("hook").requests
    verify(secret, request.headers, request.body, now=int(request.headers["webhook-timestamp"]))
    assert request.events()[0]["type"] == "test"
    assert f"{endpoint} https://127.0.0.1" in capsys.readouterr().out

    assert run(config, "list", "acme") == 0
    listing = capsys.readouterr().out
    assert endpoint in listing and "kinds=bounced" in listing and "active" in listing
    assert secret not in listing and secret.removeprefix("whsec_") not in listing

    assert run(config, "set", "acme", endpoint, "--batch", "10", "--all-kinds") == 0
    assert run(config, "list", "acme") == 0
    assert "batch=10\tkinds=all" in capsys.readouterr().out
    with pytest.raises(WebhookRefused):
        run(config, "set", "acme", endpoint, "--url", "http://example.com/hook")

    assert run(config, "pause", "acme", endpoint, "--why", "maintenance") == 0
    assert run(config, "list", "acme") == 0
    assert "paused (maintenance)" in capsys.readouterr().out
    assert run(config, "resume", "acme", endpoint) == 0

    async def events() -> list[Event]:
        b = bus(config)
        await b.start()
        try:
            return [EVENTS.decode(m.value) async for m in b.read_to_end(EVENTS.name) if m.value]
        finally:
            await b.close()

    states = [e.classification for e in asyncio.run(events()) if e.kind is EventKind.WEBHOOK]
    assert states == ["paused", "resumed"]


def test_a_private_address_is_refused_without_the_switch(tmp_path: Path, bus_section: str) -> None:
    config = _config(tmp_path, make_pki(tmp_path / "pki").ca, bus_section)
    config.core.webhooks.pop("allow_private_networks", None)
    asyncio.run(_tenant(config, "acme"))
    with pytest.raises(WebhookRefused):
        run(config, "add", "acme", "https://10.0.0.7/hook")
    with pytest.raises(WebhookRefused):
        run(config, "add", "acme", "https://169.254.169.254/latest/meta-data")


def test_replay(tmp_path: Path, bus_section: str, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, make_pki(tmp_path / "pki").ca, bus_section)
    asyncio.run(_tenant(config, "acme"))
    assert run(config, "add", "acme", "https://127.0.0.1:1/hook") == 0
    endpoint = re.search(r"(wh_[0-9a-f]{12})", capsys.readouterr().out)
    assert endpoint
    now = time.time()
    old = Event(kind=EventKind.DELIVERED, message_id="m-old", tenant="acme", at=now - 7200)
    recent = Event(kind=EventKind.BOUNCED, message_id="m-new", tenant="acme", at=now - 60)
    other = Event(kind=EventKind.DELIVERED, message_id="m-other", tenant="other", at=now - 60)
    first = webhook_retry_topic("1s")

    async def publish_events() -> None:
        b = bus(config)
        await b.start()
        try:
            await b.ensure_topics([EVENTS.name, first.name, DEAD.name])
            await b.publish([EVENTS.out(e) for e in (old, recent, other)])
        finally:
            await b.close()

    asyncio.run(publish_events())
    assert run(config, "replay", "acme", "--since", "1h") == 0
    assert "1 deliveries queued" in capsys.readouterr().out

    async def tier() -> list[WebhookAttempt]:
        b = bus(config)
        await b.start()
        try:
            return [first.decode(m.value) async for m in b.read_to_end(first.name) if m.value]
        finally:
            await b.close()

    (replayed,) = asyncio.run(tier())
    assert replayed.event_id == event_id(EVENTS.encode(recent))
    assert replayed.endpoint == endpoint[1] and replayed.not_before == 0


def test_redrive(tmp_path: Path, bus_section: str, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, make_pki(tmp_path / "pki").ca, bus_section)
    asyncio.run(_tenant(config, "acme"))
    assert run(config, "add", "acme", "https://127.0.0.1:1/hook") == 0
    endpoint = re.search(r"(wh_[0-9a-f]{12})", capsys.readouterr().out)
    assert endpoint
    now = time.time()
    first = webhook_retry_topic("1s")

    async def tier() -> list[WebhookAttempt]:
        b = bus(config)
        await b.start()
        try:
            await b.ensure_topics([first.name])
            return [first.decode(m.value) async for m in b.read_to_end(first.name) if m.value]
        finally:
            await b.close()

    # A delivery given up after max_age, as the stage dead-letters it; redrive resets it.
    aged = WebhookAttempt(
        tenant="acme",
        endpoint=endpoint[1],
        event_id="evt_x",
        payload=b"{}",
        attempt=9,
        first_at=now - 90000,
        error="HTTP 500",
    )

    async def dead() -> None:
        b = bus(config)
        await b.start()
        try:
            await b.ensure_topics([DEAD.name])
            letter = DeadLetter(
                topic=webhook_retry_topic("3s").name,
                partition=0,
                offset=5,
                key=b"acme|" + endpoint[1].encode(),
                value=webhook_retry_topic("3s").encode(aged),
                reason="webhook not acknowledged within max_age",
                group=RETRY_GROUP,
                at=now,
            )
            await b.publish([DEAD.out(letter)])
        finally:
            await b.close()

    asyncio.run(dead())
    assert run(config, "redrive", "--tenant", "acme") == 0
    assert "1 webhook deliveries redriven" in capsys.readouterr().out
    redriven = asyncio.run(tier())[-1]
    assert redriven.event_id == "evt_x"
    assert (redriven.attempt, redriven.first_at, redriven.not_before) == (0, 0.0, 0.0)
    redriven_events = [
        e
        for e in asyncio.run(_all_events(config))
        if e.kind is EventKind.WEBHOOK and e.classification == "redriven"
    ]
    assert [e.detail.split(":")[0] for e in redriven_events] == [endpoint[1]]
    assert run(config, "redrive") == 0  # nothing left: already redriven
    assert "0 webhook deliveries redriven" in capsys.readouterr().out


async def _all_events(config: Config) -> list[Event]:
    b = bus(config)
    await b.start()
    try:
        return [EVENTS.decode(m.value) async for m in b.read_to_end(EVENTS.name) if m.value]
    finally:
        await b.close()

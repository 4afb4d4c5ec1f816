"""Per-endpoint queues against a real HTTPS receiver: a hanging endpoint's queue sheds what
would wait too long without a request, its circuit opens after failures in a row, and the
other endpoint's jobs go out meanwhile (no timing assertion: each step waits for an event)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.webhooks.client import Outcome, WebhookClient
from services.webhooks.config import WebhooksConfig
from services.webhooks.dispatch import SLOW_REQUEST, Dispatcher
from services.webhooks.endpoints import Endpoints, Target
from services.webhooks.metrics import WebhooksMetrics
from services.webhooks.payload import Item
from services.webhooks.signing import new_secret
from shared.config import convert
from shared.netguard import Policy
from shared.sealing import KeyRing, webhook_associated_data
from shared.tenants import TenantTable
from shared.wire.records import Tenant, WebhookEndpoint
from shared.wire.topics import TENANTS
from testing.pki import make_pki
from testing.webhooks import Receiver

DEADLINE = 60.0
RING = KeyRing(b"\x07" * 32)


def _endpoint(tenant: str, url: str) -> WebhookEndpoint:
    ident = f"wh_{tenant}"
    sealed = RING.seal(new_secret().encode(), webhook_associated_data(tenant, ident))
    return WebhookEndpoint(id=ident, url=url, sealed_secret=sealed, created_at=1.0)


class Ends:
    """What each job ended with, by event id."""

    def __init__(self) -> None:
        self.outcomes: dict[str, tuple[Outcome, bool]] = {}
        self.changed = asyncio.Event()

    def done(self, ident: str) -> object:
        def end(outcome: Outcome, attempted: bool) -> None:
            self.outcomes[ident] = (outcome, attempted)
            self.changed.set()

        return end

    async def wait(self, *idents: str) -> None:
        async def all_ended() -> None:
            while not all(i in self.outcomes for i in idents):
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(all_ended(), DEADLINE)


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[Receiver]:
    async with Receiver(make_pki(tmp_path / "pki")) as running:
        yield running


async def _dispatcher(
    receiver: Receiver, **settings: object
) -> tuple[Dispatcher, dict[str, Target]]:
    assert receiver.pki is not None
    raw = {"concurrency": 1, "ca_file": str(receiver.pki.ca), **settings}
    cfg = convert(raw, WebhooksConfig, "test", prefix="webhooks")
    table = TenantTable()
    targets = {}
    for tenant in ("slow", "fast"):
        endpoint = _endpoint(tenant, receiver.url(tenant))
        table.apply(tenant.encode(), TENANTS.encode(Tenant(id=tenant, webhooks=(endpoint,))))
        targets[tenant] = Target(tenant, endpoint)
    client = WebhookClient(
        Policy(allow_private_networks=True),
        timeout=DEADLINE,
        connect_timeout=5.0,
        ca_file=receiver.pki.ca,
    )
    await client.start()

    def spawn(coro: object, name: str) -> asyncio.Task[None]:
        return asyncio.create_task(coro, name=name)  # type: ignore[arg-type]

    dispatcher = Dispatcher(
        cfg,
        client,
        Endpoints(table, RING),
        WebhooksMetrics(CollectorRegistry()),
        spawn=spawn,
        activity=contextlib.nullcontext,  # type: ignore[arg-type]
        on_pause=lambda target, breaker: None,
    )
    return dispatcher, targets


def _item(n: int) -> Item:
    return Item(f"evt_{n}", b'{"id":"evt_%d"}' % n, 0.0)


async def test_a_hanging_endpoint_sheds_its_queue_and_never_holds_another(
    receiver: Receiver,
) -> None:
    dispatcher, targets = await _dispatcher(receiver, max_queued=2, max_queue_wait="0.5s")
    slow = receiver.behaviour("slow")
    slow.hang = asyncio.Event()
    ends = Ends()
    try:
        dispatcher.submit(targets["slow"], _item(1), ends.done("evt_1"))  # type: ignore[arg-type]
        await receiver.wait_for(lambda: slow.hanging == 1, DEADLINE)
        await asyncio.sleep(SLOW_REQUEST * 1.5)  # the request is now "slow" by its age
        for n in (2, 3, 4):
            dispatcher.submit(targets["slow"], _item(n), ends.done(f"evt_{n}"))  # type: ignore[arg-type]
        await ends.wait("evt_4")
        assert ends.outcomes["evt_4"][0].result == "queue_full"
        assert ends.outcomes["evt_4"][1] is False
        assert "evt_2" not in ends.outcomes and "evt_3" not in ends.outcomes
        # Another endpoint's job goes out and is acknowledged while slow still hangs.
        dispatcher.submit(targets["fast"], _item(5), ends.done("evt_5"))  # type: ignore[arg-type]
        await ends.wait("evt_5")
        assert ends.outcomes["evt_5"][0].ok and slow.hanging == 1
        slow.hang.set()
        await ends.wait("evt_1", "evt_2", "evt_3")
        assert all(ends.outcomes[f"evt_{n}"][0].ok for n in (1, 2, 3))
    finally:
        await dispatcher.client.close()


async def test_the_circuit_opens_after_failures_in_a_row(receiver: Receiver) -> None:
    dispatcher, targets = await _dispatcher(receiver, failure_threshold=2, circuit_open="1h")
    receiver.behaviour("slow").fail_next = 100
    ends = Ends()
    try:
        for n in (1, 2):
            dispatcher.submit(targets["slow"], _item(n), ends.done(f"evt_{n}"))  # type: ignore[arg-type]
            await ends.wait(f"evt_{n}")
        dispatcher.submit(targets["slow"], _item(3), ends.done("evt_3"))  # type: ignore[arg-type]
        await ends.wait("evt_3")
    finally:
        await dispatcher.client.close()
    assert [ends.outcomes[f"evt_{n}"][0].result for n in (1, 2, 3)] == [
        "http_5xx",
        "http_5xx",
        "circuit_open",
    ]
    assert ends.outcomes["evt_3"][1] is False
    assert len(receiver.behaviour("slow").requests) == 2  # no request for the third

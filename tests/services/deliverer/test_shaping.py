"""The shared shaper's priority: transactional work before bulk work, for connection slots
and pacing slots; and a shaper stays while a queue of either lane holds it."""

from __future__ import annotations

import asyncio

import pytest

from services.deliverer.config import DelivererConfig, Policy, Throttling
from services.deliverer.shaping import Pacer, Shaper, Shapers
from services.deliverer.throttle import Throttle


def shaper(connections: int = 1, per_minute: float = 0.0) -> Shaper:
    policy = Policy(max_connections=connections, messages_per_minute=per_minute)
    return Shaper("domain:dest.test", Throttle(Throttling(), policy))


def test_a_freed_slot_goes_to_a_transactional_waiter_before_earlier_bulk_ones() -> None:
    s = shaper(connections=1)
    served: list[str] = []

    def kick(name: str) -> None:
        served.append(name)
        assert s.acquire()

    assert s.acquire()
    s.wait(lambda: kick("bulk 1"))
    s.wait(lambda: kick("bulk 2"))
    assert s.contended and not s.priority_waiting
    s.wait(lambda: kick("reset"), urgent=True)
    assert s.priority_waiting
    s.release()
    assert served == ["reset"] and not s.priority_waiting and s.contended
    s.release()
    s.release()
    assert served == ["reset", "bulk 1", "bulk 2"] and not s.contended


def test_a_waiter_is_queued_once_and_idle_workers_are_told() -> None:
    s = shaper(connections=1)
    idle = asyncio.Event()
    s.idle_on(idle, True)
    assert s.acquire()
    calls: list[int] = []

    def kick() -> None:
        calls.append(1)

    s.wait(kick, urgent=True)
    s.wait(kick, urgent=True)
    assert idle.is_set()  # an idle connection lets its slot go to the waiter
    s.release()
    assert calls == [1]


async def test_a_transactional_send_takes_the_next_pacing_slot_before_waiting_bulk() -> None:
    # 6,000 a minute: one send every 10 ms. The order is what counts, not the times.
    pacer = Pacer(lambda: 6000.0)
    order: list[str] = []

    async def send(name: str, urgent: bool) -> None:
        await pacer.wait(urgent=urgent)
        order.append(name)

    await send("first", urgent=False)  # the clock was free: at once
    bulk = [asyncio.create_task(send(f"bulk {i}", urgent=False)) for i in range(3)]
    await asyncio.sleep(0)  # the bulk sends are waiting for their slots
    assert pacer.waiting == 3
    await send("reset", urgent=True)
    await asyncio.gather(*bulk)
    assert order == ["first", "reset", "bulk 0", "bulk 1", "bulk 2"]


async def test_a_cancelled_pacing_wait_gives_its_slot_to_the_next() -> None:
    # One slot a second: the cancelled caller's slot cannot come before the cancel even on a
    # loaded machine (at 100 a second it sometimes did, and the cancel found it done).
    pacer = Pacer(lambda: 60.0)
    await pacer.wait(urgent=True)
    gone = asyncio.create_task(pacer.wait(urgent=True))
    kept = asyncio.create_task(pacer.wait(urgent=False))
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    await kept
    assert pacer.waiting == 0


async def test_pacing_follows_the_rate_now() -> None:
    rate = [6000.0]
    pacer = Pacer(lambda: rate[0])
    await pacer.wait(urgent=False)
    waiting = [asyncio.create_task(pacer.wait(urgent=False)) for _ in range(3)]
    await asyncio.sleep(0)
    rate[0] = 0.0  # unlimited now (a policy change): everyone waiting goes at the next slot
    await asyncio.gather(*waiting)
    assert pacer.waiting == 0
    await pacer.wait(urgent=False)  # and nobody waits any more


def test_a_shaper_stays_while_a_queue_of_either_lane_holds_it() -> None:
    shapers = Shapers(DelivererConfig())
    first = shapers.for_domain("dest.test", "other")
    first.queues += 1  # the bulk lane's queue still holds it; the transactional one went
    shapers.drop_unused()
    assert shapers.for_domain("dest.test", "other") is first
    first.queues -= 1
    shapers.drop_unused()
    assert shapers.for_domain("dest.test", "other") is not first

"""Pacing, slots and shaper keys pinned step by step on an event loop whose clock moves only
when the test moves it (so nothing depends on real time or machine load): one send per
60/rate seconds, urgent callers first, a cancelled caller leaving its queue, a rate cut to
unlimited releasing everyone; which shaper key a domain gets (provider, domain, source
address) and how many domains' providers are remembered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from services.deliverer.config import DelivererConfig, Policy, PolicyOverride, Throttling
from services.deliverer.shaping import Pacer, Shaper, Shapers
from services.deliverer.throttle import Throttle
from shared.providers import OTHER


class ManualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` is set by the test; errors in callbacks are kept."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0
        self.errors: list[dict[str, Any]] = []
        self.set_exception_handler(lambda loop, context: self.errors.append(context))

    def time(self) -> float:
        return self.now


def run(scenario: Callable[[ManualClockLoop], Coroutine[Any, Any, None]]) -> None:
    loop = ManualClockLoop()
    try:
        loop.run_until_complete(scenario(loop))
        assert loop.errors == []
    finally:
        loop.close()


async def settle() -> None:
    """Let due timers and woken tasks run (the clock does not move)."""
    for _ in range(5):
        await asyncio.sleep(0)


class Caller:
    """One send waiting for its pacing slot."""

    def __init__(self, pacer: Pacer, name: str, done: list[str], *, urgent: bool) -> None:
        self.task = asyncio.ensure_future(self._go(pacer, name, done, urgent))

    @staticmethod
    async def _go(pacer: Pacer, name: str, done: list[str], urgent: bool) -> None:
        await pacer.wait(urgent=urgent)
        done.append(name)


def test_one_send_per_slot_urgent_first() -> None:
    async def scenario(loop: ManualClockLoop) -> None:
        pacer = Pacer(lambda: 60.0)  # one a second
        done: list[str] = []
        Caller(pacer, "first", done, urgent=False)
        await settle()
        assert done == ["first"]  # the clock was free: at once
        Caller(pacer, "bulk", done, urgent=False)
        Caller(pacer, "urgent", done, urgent=True)
        Caller(pacer, "bulk2", done, urgent=False)
        await settle()
        assert (done, pacer.waiting) == (["first"], 3)
        loop.now = 1000.999
        await settle()
        assert done == ["first"]
        loop.now = 1001.0
        await settle()
        assert done == ["first", "urgent"]  # one slot, to the urgent caller
        loop.now = 1001.5
        await settle()
        assert done == ["first", "urgent"]
        loop.now = 1002.0
        await settle()
        assert done == ["first", "urgent", "bulk"]
        loop.now = 1003.0
        await settle()
        assert (done[-1], pacer.waiting) == ("bulk2", 0)

    run(scenario)


def test_a_caller_exactly_at_the_next_slot_goes_at_once() -> None:
    async def scenario(loop: ManualClockLoop) -> None:
        pacer = Pacer(lambda: 30.0)  # one every two seconds
        done: list[str] = []
        Caller(pacer, "a", done, urgent=True)
        await settle()
        loop.now = 1002.0
        Caller(pacer, "b", done, urgent=True)
        await settle()
        assert done == ["a", "b"]
        loop.now = 1003.9
        Caller(pacer, "c", done, urgent=True)
        await settle()
        assert done == ["a", "b"]
        loop.now = 1004.0
        await settle()
        assert done == ["a", "b", "c"]

    run(scenario)


def test_one_a_minute_is_a_rate_not_unlimited() -> None:
    async def scenario(loop: ManualClockLoop) -> None:
        pacer = Pacer(lambda: 1.0)
        done: list[str] = []
        for name in ("a", "b", "c"):
            Caller(pacer, name, done, urgent=False)
        await settle()
        assert done == ["a"]
        loop.now = 1060.0
        await settle()
        assert done == ["a", "b"]
        loop.now = 1119.0
        await settle()
        assert done == ["a", "b"]
        loop.now = 1120.0
        await settle()
        assert done == ["a", "b", "c"]

    run(scenario)


def test_unlimited_sends_at_once_and_a_cut_to_unlimited_releases_everyone() -> None:
    async def scenario(loop: ManualClockLoop) -> None:
        rate = [0.0]
        pacer = Pacer(lambda: rate[0])
        done: list[str] = []
        for name in ("a", "b"):
            Caller(pacer, name, done, urgent=False)
        await settle()
        assert done == ["a", "b"]
        rate[0] = 60.0
        for name in ("c", "d", "e"):
            Caller(pacer, name, done, urgent=False)
        await settle()
        assert done == ["a", "b", "c"]
        rate[0] = 0.0  # the policy changed: unlimited
        loop.now = 1001.0
        await settle()
        assert done == ["a", "b", "c", "d", "e"]

    run(scenario)


def test_a_cancelled_caller_leaves_its_queue() -> None:
    async def scenario(loop: ManualClockLoop) -> None:
        pacer = Pacer(lambda: 60.0)
        done: list[str] = []
        Caller(pacer, "first", done, urgent=False)
        urgent = Caller(pacer, "urgent", done, urgent=True)
        bulk = Caller(pacer, "bulk", done, urgent=False)
        Caller(pacer, "other", done, urgent=False)
        await settle()
        assert pacer.waiting == 3
        urgent.task.cancel()
        await settle()
        assert pacer.waiting == 2
        bulk.task.cancel()
        await settle()
        assert pacer.waiting == 1
        loop.now = 1001.0
        await settle()
        assert done == ["first", "other"]  # the slot went to who still waits

    run(scenario)


def _shaper(concurrency: int = 2, rate: float = 0.0) -> Shaper:
    policy = Policy(max_connections=concurrency, messages_per_minute=rate)
    return Shaper("domain:x.test", Throttle(Throttling(), policy))


def test_slots_and_a_new_shaper_s_state() -> None:
    shaper = _shaper(concurrency=1)
    assert shaper.throttle_counted is False  # not yet in the throttled gauge
    assert shaper.unused is True
    assert shaper.acquire() is True
    assert shaper.acquire() is False
    assert shaper.unused is False


def test_an_idle_worker_is_told_of_contention_until_it_stops_listening() -> None:
    shaper = _shaper()
    listening, gone = asyncio.Event(), asyncio.Event()
    shaper.idle_on(listening, True)
    shaper.idle_on(gone, True)
    shaper.idle_on(gone, False)
    shaper.wait(lambda: None)
    assert listening.is_set() and not gone.is_set()


def test_pace_is_urgent_unless_told_otherwise() -> None:
    async def scenario(loop: ManualClockLoop) -> None:
        shaper = _shaper(rate=60.0)
        done: list[str] = []

        async def send(name: str, **kw: bool) -> None:
            await shaper.pace(**kw)
            done.append(name)

        tasks = [asyncio.ensure_future(send("first"))]
        await settle()
        tasks.append(asyncio.ensure_future(send("bulk", urgent=False)))
        tasks.append(asyncio.ensure_future(send("default")))
        await settle()
        loop.now = 1001.0
        await settle()
        assert done == ["first", "default"]
        loop.now = 1002.0
        await settle()
        assert done == ["first", "default", "bulk"]

    run(scenario)


CFG = DelivererConfig(
    providers={"google": PolicyOverride(max_connections=3)},
    domains={"special.test": PolicyOverride(max_connections=7)},
)


def test_shaper_keys() -> None:
    shapers = Shapers(CFG)
    shared = shapers.for_domain("A.test", "google")
    assert shared.key == "provider:google"
    assert shapers.for_domain("b.test", "google") is shared
    assert shared.throttle.concurrency == 3
    alone = shapers.for_domain("Special.test", "google")  # its own policy: shaped alone
    assert (alone.key, alone.throttle.concurrency) == ("domain:special.test", 7)
    other = shapers.for_domain("c.test", OTHER)
    assert other.key == "domain:c.test"
    assert shapers.for_domain("c.test", OTHER) is other
    sourced = shapers.for_domain("a.test", "google", "192.0.2.1")
    assert sourced.key == "provider:google|192.0.2.1" and sourced is not shared
    assert shapers.keyed("provider", "Google") == [shared, sourced]
    shapers.for_domain("x.test", "googlemail")
    assert shapers.keyed("domain", "special.test") == [alone]
    assert shapers.keyed("provider", "goog") == []


def test_a_domain_s_provider_is_remembered_and_unknown_does_not_erase_it() -> None:
    shapers = Shapers(CFG)
    shapers.for_domain("A.test", "google")
    shapers.for_domain("a.test", OTHER)  # before its MX is known again
    assert shapers.provider_of("a.TEST") == "google"
    assert shapers.provider_of("never.test") == OTHER


def test_the_oldest_domains_are_forgotten_past_the_bound() -> None:
    shapers = Shapers(CFG, remember=2)
    shapers.for_domain("a.test", "google")
    shapers.for_domain("b.test", "google")
    assert shapers.provider_of("a.test") == "google"
    shapers.for_domain("a.test", "google")  # used again: now the newest
    shapers.for_domain("c.test", "google")
    assert [shapers.provider_of(d) for d in ("a.test", "b.test", "c.test")] == [
        "google",
        OTHER,
        "google",
    ]


def test_ten_thousand_domains_are_remembered() -> None:
    shapers = Shapers(CFG)
    for i in range(10_000):
        shapers.for_domain(f"d{i}.test", "google")
    assert shapers.provider_of("d0.test") == "google"
    shapers.for_domain("one-more.test", "google")
    assert shapers.provider_of("d0.test") == OTHER
    assert shapers.provider_of("d1.test") == "google"


def test_a_caller_at_the_free_slot_goes_before_one_arriving_in_the_same_instant() -> None:
    async def scenario(loop: ManualClockLoop) -> None:
        pacer = Pacer(lambda: 30.0)
        done: list[str] = []
        Caller(pacer, "a", done, urgent=True)
        await settle()
        loop.now = 1002.0  # exactly the next free slot
        Caller(pacer, "bulk", done, urgent=False)
        Caller(pacer, "urgent", done, urgent=True)
        await settle()
        assert done == ["a", "bulk"]  # the clock was free: the first caller took the slot

    run(scenario)


def test_a_caller_cancelled_as_its_slot_comes_passes_the_slot_on() -> None:
    async def scenario(loop: ManualClockLoop) -> None:
        pacer = Pacer(lambda: 60.0)
        done: list[str] = []
        Caller(pacer, "first", done, urgent=False)
        await settle()
        leaving = Caller(pacer, "leaving", done, urgent=False)
        Caller(pacer, "next", done, urgent=False)
        await settle()
        loop.now = 1001.0
        await asyncio.sleep(0)  # the slot's timer is due and runs after this step
        leaving.task.cancel()  # cancelled in the same instant, before the slot is given
        await settle()
        assert done == ["first", "next"]
        assert leaving.task.cancelled()

    run(scenario)


def test_a_caller_cancelled_after_its_slot_was_given_ends_cancelled() -> None:
    async def scenario(loop: ManualClockLoop) -> None:
        pacer = Pacer(lambda: 60.0)
        done: list[str] = []
        Caller(pacer, "first", done, urgent=False)
        await settle()
        late = Caller(pacer, "late", done, urgent=False)
        await settle()
        loop.now = 1001.0
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # the slot went to "late", which has not run yet
        late.task.cancel()
        await settle()
        assert late.task.cancelled()  # a CancelledError, not an error of the pacer's
        assert (done, pacer.waiting) == (["first"], 0)

    run(scenario)

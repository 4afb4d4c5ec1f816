"""The MTA-STS source's rules with a fake DNS and fetch and an injected clock (pure logic):
when a policy is fetched again (RFC 8461 5.1), what a cached policy survives, one fetch per
domain, no stall across domains, and what each mode asks of a connection."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from services.deliverer.config import MtaSts
from services.deliverer.transport.mtasts import MtaStsSource, TxtLookupFailed
from services.deliverer.transport.mtasts_cache import PolicyCache
from services.deliverer.transport.policy import ResultType, Security, TlsCheckFailed
from shared.config import Duration
from shared.mtasts import PolicyFetchError, StsPolicy, parse_policy
from shared.wire.records import MtaStsPolicy

DAY = 86400.0


def sts(mode: str = "enforce", max_age: int = 7 * 86400, mx: str = "*.example.com") -> StsPolicy:
    return parse_policy(f"version: STSv1\nmode: {mode}\nmx: {mx}\nmax_age: {max_age}\n")


@dataclass
class World:
    """What DNS and the policy host say, and what was asked of them."""

    now: float = 1_000_000.0
    txt: dict[str, list[str]] = field(default_factory=dict)
    txt_fails: bool = False
    policies: dict[str, StsPolicy] = field(default_factory=dict)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)  # fetch waits on these
    fetches: list[str] = field(default_factory=list)
    txt_queries: list[str] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def lookup_txt(self, domain: str) -> tuple[list[str], float]:
        self.txt_queries.append(domain)
        if self.txt_fails:
            raise TxtLookupFailed("SERVFAIL")
        return self.txt.get(domain, []), 3600.0

    async def fetch(self, domain: str) -> StsPolicy:
        self.fetches.append(domain)
        gate = self.gates.get(domain)
        if gate is not None:
            await gate.wait()
        policy = self.policies.get(domain)
        if policy is None:
            raise PolicyFetchError(f"https://mta-sts.{domain}/: connection refused")
        return policy


async def settle(done: Callable[[], bool]) -> None:
    """Let other tasks run until ``done()`` (a bounded number of loop turns, no time)."""
    for _ in range(1000):
        if done():
            return
        await asyncio.sleep(0)
    raise AssertionError("never settled")


def source(world: World, cache: PolicyCache | None = None, **cfg: object) -> MtaStsSource:
    settings = MtaSts(txt_cache=0.0, **cfg)  # type: ignore[arg-type]
    return MtaStsSource(
        settings,
        cache if cache is not None else PolicyCache(),
        lookup_txt=world.lookup_txt,
        fetch=world.fetch,
        clock=world.clock,
    )


async def test_fetched_once_then_served_from_the_cache() -> None:
    world = World(txt={"example.com": ["v=STSv1; id=one"]}, policies={"example.com": sts()})
    mta = source(world)
    first = await mta.policy("Example.com.")
    assert first is not None and first.policy_id == "one" and first.mode == "enforce"
    assert first.fetched_at == world.now and mta.cache.get("example.com") == first
    world.now += DAY
    assert await mta.policy("example.com") == first
    assert world.fetches == ["example.com"]


async def test_a_new_txt_id_fetches_again() -> None:
    world = World(txt={"example.com": ["v=STSv1; id=one"]}, policies={"example.com": sts()})
    mta = source(world)
    await mta.policy("example.com")
    world.txt["example.com"] = ["v=STSv1; id=two"]
    world.policies["example.com"] = sts("testing")
    policy = await mta.policy("example.com")
    assert policy is not None and (policy.policy_id, policy.mode) == ("two", "testing")
    assert world.fetches == ["example.com", "example.com"]


async def test_an_expired_policy_is_fetched_again() -> None:
    world = World(txt={"example.com": ["v=STSv1; id=one"]}, policies={"example.com": sts()})
    mta = source(world)
    await mta.policy("example.com")
    world.now += 7 * DAY + 1
    policy = await mta.policy("example.com")
    assert policy is not None and policy.fetched_at == world.now
    assert world.fetches == ["example.com", "example.com"]


async def test_a_failed_fetch_keeps_the_unexpired_policy_until_it_expires() -> None:
    world = World(txt={"example.com": ["v=STSv1; id=one"]}, policies={"example.com": sts()})
    mta = source(world)
    first = await mta.policy("example.com")
    del world.policies["example.com"]  # the policy host is down (or blocked)
    world.txt["example.com"] = ["v=STSv1; id=two"]
    world.now += DAY
    assert await mta.policy("example.com") == first  # RFC 8461 5.1
    assert mta.failures["example.com"].result_type == "sts-policy-fetch-error"
    world.now += 6 * DAY + 1
    assert await mta.policy("example.com") is None  # expired: as if no policy


async def test_a_vanished_txt_record_or_failed_dns_keeps_the_cached_policy() -> None:
    world = World(txt={"example.com": ["v=STSv1; id=one"]}, policies={"example.com": sts()})
    mta = source(world)
    first = await mta.policy("example.com")
    world.txt.clear()  # stripped by an attacker, or removed: only expiry ends the policy
    assert await mta.policy("example.com") == first
    world.txt_fails = True
    assert await mta.policy("example.com") == first
    world.now += 7 * DAY + 1
    assert await mta.policy("example.com") is None
    assert world.fetches == ["example.com"]


async def test_no_txt_record_means_no_policy_and_no_fetch() -> None:
    world = World(txt={"example.com": ["v=STSv1; id=a", "v=STSv1; id=b"]})
    mta = source(world)
    assert await mta.policy("example.com") is None
    assert await mta.policy("other.example") is None
    assert world.fetches == []


async def test_failed_fetch_without_cache_is_no_policy() -> None:
    world = World(txt={"example.com": ["v=STSv1; id=one"]})
    mta = source(world)
    assert await mta.policy("example.com") is None
    # No policy: the configuration decides, but the failure is reported with the session.
    unfetched = await mta.host_policy("example.com", "mx.example.com", False)
    assert unfetched is not None and unfetched.inherit
    assert unfetched.noted is not None
    assert unfetched.noted.result_type is ResultType.STS_POLICY_FETCH_ERROR
    assert (unfetched.report.domain, unfetched.report.type) == ("example.com", "sts")
    assert "example.com" in mta.failures
    world.now += 3600  # past fetch_retry: the next lookup fetches again, no stale report
    world.policies["example.com"] = sts()
    found = await mta.host_policy("example.com", "mx.example.com", False)
    assert found is not None and not found.inherit and found.noted is None


async def test_refreshed_in_the_background_before_expiry() -> None:
    world = World(txt={"example.com": ["v=STSv1; id=one"]}, policies={"example.com": sts()})
    mta = source(world, refresh_before=DAY)
    first = await mta.policy("example.com")
    assert first is not None
    world.now += 6 * DAY + 1  # less than refresh_before left
    gate = world.gates["example.com"] = asyncio.Event()
    assert await mta.policy("example.com") == first  # served at once, not waiting
    await settle(lambda: len(world.fetches) == 2)
    assert world.fetches == ["example.com", "example.com"]
    assert mta.cache.get("example.com") == first
    gate.set()
    await settle(lambda: mta.cache.get("example.com") != first)
    refreshed = mta.cache.get("example.com")
    assert refreshed is not None and refreshed.fetched_at == world.now
    await mta.close()


async def test_one_fetch_per_domain_and_a_slow_domain_stalls_no_other() -> None:
    world = World(
        txt={"slow.example": ["v=STSv1; id=1"], "fast.example": ["v=STSv1; id=1"]},
        policies={"slow.example": sts(mx="mx.slow.example"), "fast.example": sts()},
    )
    gate = world.gates["slow.example"] = asyncio.Event()
    mta = source(world)
    waiting = [asyncio.ensure_future(mta.policy("slow.example")) for _ in range(5)]
    await asyncio.sleep(0)
    fast = await mta.policy("fast.example")  # completes while slow.example's fetch hangs
    assert fast is not None and not any(task.done() for task in waiting)
    gate.set()
    results = await asyncio.gather(*waiting)
    assert len({id(r) for r in results}) == 1 and results[0] is not None
    assert world.fetches.count("slow.example") == 1


async def test_a_cancelled_waiter_does_not_cancel_the_others_fetch() -> None:
    world = World(txt={"example.com": ["v=STSv1; id=1"]}, policies={"example.com": sts()})
    gate = world.gates["example.com"] = asyncio.Event()
    mta = source(world)
    first = asyncio.ensure_future(mta.policy("example.com"))
    second = asyncio.ensure_future(mta.policy("example.com"))
    await asyncio.sleep(0)
    first.cancel()
    gate.set()
    assert (await second) is not None
    assert world.fetches == ["example.com"]


async def test_txt_answer_reused_for_txt_cache() -> None:
    world = World(txt={"example.com": ["v=STSv1; id=1"]}, policies={"example.com": sts()})
    mta = MtaStsSource(
        MtaSts(txt_cache=Duration(300)),
        PolicyCache(),
        lookup_txt=world.lookup_txt,
        fetch=world.fetch,
        clock=world.clock,
    )
    await mta.policy("example.com")
    world.now += 299
    await mta.policy("example.com")
    assert world.txt_queries == ["example.com"]
    world.now += 2
    await mta.policy("example.com")
    assert world.txt_queries == ["example.com", "example.com"]


async def test_enforce_host_policy() -> None:
    world = World(txt={"example.com": ["v=STSv1; id=1"]}, policies={"example.com": sts()})
    mta = source(world)
    inside = await mta.host_policy("example.com", "mx1.example.com", False)
    assert inside is not None
    assert inside.security is Security.MTA_STS
    assert (inside.require_tls, inside.verify_webpki, inside.enforce) == (True, True, True)
    assert inside.refused is None and inside.check is None
    assert inside.report.domain == "example.com" and inside.report.type == "sts"
    assert inside.report.mx_patterns == ("*.example.com",)
    assert "mode: enforce" in inside.report.strings
    outside = await mta.host_policy("example.com", "mx.elsewhere.test", False)
    assert outside is not None and outside.refused is not None
    assert outside.refused.result_type is ResultType.VALIDATION_FAILURE
    assert "mx.elsewhere.test does not match" in outside.refused.detail


async def test_testing_host_policy_reports_but_never_refuses() -> None:
    world = World(txt={"example.com": ["v=STSv1; id=1"]}, policies={"example.com": sts("testing")})
    mta = source(world)
    inside = await mta.host_policy("example.com", "mx1.example.com", False)
    assert inside is not None and inside.enforce is False and inside.refused is None
    assert inside.require_tls and inside.verify_webpki and inside.check is None
    outside = await mta.host_policy("example.com", "mx.elsewhere.test", False)
    assert outside is not None and outside.refused is None and outside.check is not None
    with pytest.raises(TlsCheckFailed) as failed:
        outside.check(ssl.create_default_context().wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO()), "x")
    assert failed.value.result_type is ResultType.VALIDATION_FAILURE


async def test_mode_none_and_disabled_give_no_host_policy() -> None:
    world = World(txt={"example.com": ["v=STSv1; id=1"]}, policies={"example.com": sts("none")})
    mta = source(world)
    assert await mta.host_policy("example.com", "mx1.example.com", False) is None
    assert (await mta.policy("example.com")) is not None  # cached: it ends a previous policy
    world.policies["example.com"] = sts()
    off = source(world, enabled=False)
    assert await off.host_policy("example.com", "mx1.example.com", False) is None
    assert world.fetches == ["example.com"]


def test_cache_keeps_the_newest_fetch() -> None:
    cache = PolicyCache()
    newer = MtaStsPolicy(
        domain="example.com", policy_id="2", mode="enforce", max_age=1, fetched_at=20
    )
    older = MtaStsPolicy(
        domain="Example.com", policy_id="1", mode="testing", max_age=1, fetched_at=10
    )
    cache.keep(newer)
    cache.keep(older)
    assert cache.get("EXAMPLE.com.") == newer and len(cache) == 1


async def test_a_failed_fetch_is_not_retried_before_fetch_retry() -> None:
    world = World(txt={"example.com": ["v=STSv1; id=one"]})
    mta = source(world, fetch_retry=300.0)
    assert await mta.policy("example.com") is None
    world.policies["example.com"] = sts()  # the policy host is back
    world.now += 299
    assert await mta.policy("example.com") is None  # not asked once per connection
    assert world.fetches == ["example.com"]
    world.now += 2
    assert await mta.policy("example.com") is not None
    assert world.fetches == ["example.com", "example.com"] and "example.com" not in mta.failures


class StuckBus:
    """A bus whose publish waits until released (a slow or unavailable broker)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.published: list[object] = []

    async def publish(self, records: list[object], timeout: float | None = None) -> None:
        await self.release.wait()
        self.published += records


async def test_a_slow_bus_never_holds_the_lookup_and_close_finishes_the_publication() -> None:
    world = World(txt={"example.com": ["v=STSv1; id=1"]}, policies={"example.com": sts()})
    bus = StuckBus()
    mta = source(world, PolicyCache(bus))  # type: ignore[arg-type]
    assert await mta.policy("example.com") is not None  # while the publication hangs
    assert bus.published == []
    bus.release.set()
    await mta.close()
    assert len(bus.published) == 1

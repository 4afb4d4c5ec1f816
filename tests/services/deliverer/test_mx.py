"""MX resolution against a real DNS server on loopback."""

from __future__ import annotations

import asyncio
import random

import pytest

from services.deliverer.mx import MxResolver
from services.deliverer.outcome import (
    DNS_TEMPORARY,
    NO_MAIL_HOST,
    NO_SUCH_DOMAIN,
    NULL_MX,
    DeliveryFailure,
    Outcome,
    classify,
)
from testing.dnsserver import DnsServer

RECORDS = {
    "multi.test": [
        ("MX", "20 backup.multi.test."),
        ("MX", "10 a.multi.test."),
        ("MX", "10 b.multi.test."),
    ],
    "a.multi.test": [("A", "127.0.0.2")],
    "b.multi.test": [("A", "127.0.0.3")],
    "backup.multi.test": [("A", "127.0.0.4"), ("AAAA", "::1")],
    "implicit.test": [("A", "127.0.0.5")],
    "nullmx.test": [("MX", "0 .")],
    "broken.test": [("SERVFAIL", "")],
    "empty.test": [("TXT", '"v=spf1 -all"')],
    "dangling.test": [("MX", "10 missing.dangling.test.")],
}


def _resolver(dns: DnsServer, clock: list[float] | None = None, seed: int = 1) -> MxResolver:
    now = clock if clock is not None else [0.0]
    return MxResolver(
        [f"127.0.0.1:{dns.port}"],
        timeout=2.0,
        negative_ttl=30,
        clock=lambda: now[0],
        rng=random.Random(seed),
    )


async def test_preference_order_and_random_among_equals() -> None:
    async with DnsServer(RECORDS) as dns:
        firsts = set()
        for seed in range(20):
            hosts = await _resolver(dns, seed=seed).resolve("multi.test")
            assert [h.preference for h in hosts] == [10, 10, 20]
            assert hosts[2].name == "backup.multi.test"
            assert hosts[2].addresses == ("127.0.0.4", "::1")
            firsts.add(hosts[0].name)
        assert firsts == {"a.multi.test", "b.multi.test"}


async def test_implicit_mx() -> None:
    async with DnsServer(RECORDS) as dns:
        hosts = await _resolver(dns).resolve("implicit.test")
        assert [(h.name, h.addresses) for h in hosts] == [("implicit.test", ("127.0.0.5",))]


@pytest.mark.parametrize(
    ("domain", "reply", "outcome"),
    [
        ("nullmx.test", NULL_MX, Outcome.BOUNCED),
        ("nowhere.test", NO_SUCH_DOMAIN, Outcome.BOUNCED),
        ("empty.test", NO_MAIL_HOST, Outcome.BOUNCED),
        ("broken.test", DNS_TEMPORARY, Outcome.DEFERRED),
        ("dangling.test", DNS_TEMPORARY, Outcome.DEFERRED),
    ],
)
async def test_failures(domain: str, reply: object, outcome: Outcome) -> None:
    async with DnsServer(RECORDS) as dns:
        with pytest.raises(DeliveryFailure) as info:
            await _resolver(dns).resolve(domain)
        assert info.value.reply == reply
        assert classify(info.value).outcome is outcome
    assert NULL_MX.enhanced == "5.1.10"


async def test_cache_honours_ttl_and_caches_negative_answers() -> None:
    async with DnsServer(RECORDS, ttl=60) as dns:
        clock = [0.0]
        resolver = _resolver(dns, clock)
        await resolver.resolve("implicit.test")
        with pytest.raises(DeliveryFailure):
            await resolver.resolve("nowhere.test")
        asked = len(dns.queries)
        clock[0] = 20.0
        await resolver.resolve("implicit.test")
        with pytest.raises(DeliveryFailure):
            await resolver.resolve("nowhere.test")
        assert len(dns.queries) == asked  # both answered from the cache
        dns.set("nowhere.test", [("A", "127.0.0.9")])
        clock[0] = 40.0  # past the negative TTL (30s), within the positive one (60s)
        hosts = await resolver.resolve("nowhere.test")
        assert hosts[0].addresses == ("127.0.0.9",)
        clock[0] = 61.0
        await resolver.resolve("implicit.test")
        assert ("implicit.test", "MX") in dns.queries[asked:]


async def test_servfail_is_not_cached() -> None:
    async with DnsServer(RECORDS) as dns:
        resolver = _resolver(dns)
        with pytest.raises(DeliveryFailure):
            await resolver.resolve("broken.test")
        dns.set("broken.test", [("A", "127.0.0.6")])
        hosts = await resolver.resolve("broken.test")
        assert hosts[0].addresses == ("127.0.0.6",)


async def test_concurrent_lookups_share_one_query() -> None:
    async with DnsServer(RECORDS) as dns:
        resolver = _resolver(dns)
        results = await asyncio.gather(*(resolver.resolve("multi.test") for _ in range(50)))
        assert all(len(hosts) == 3 for hosts in results)
        assert dns.queries.count(("multi.test", "MX")) == 1
        assert dns.queries.count(("a.multi.test", "A")) == 1

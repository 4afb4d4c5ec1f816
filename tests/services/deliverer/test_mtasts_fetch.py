"""MTA-STS through real sockets: the loopback DNS server publishes ``_mta-sts`` and the
policy host's address, an aiohttp HTTPS server with a test-CA certificate serves the policy,
and the deliverer's production source (``MtaStsSource.create``) fetches, refuses and caches;
the cache survives a restart on the embedded bus and on Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from services.deliverer.config import DelivererConfig, MtaSts
from services.deliverer.transport.mtasts import MtaStsSource
from services.deliverer.transport.policy import ResultType
from shared.bus.base import Bus
from shared.wire.records import MtaStsPolicy
from shared.wire.topics import MTA_STS
from testing.buses import bus_of_kind
from testing.dnsserver import DnsServer
from testing.mtasts import ENFORCE, PolicyHost, sts_records
from testing.pki import Pki, make_pki

DOMAIN = "example.test"


@dataclass
class Lab:
    dns: DnsServer
    host: PolicyHost
    pki: Pki

    def config(self, **sts: object) -> DelivererConfig:
        settings = {"ca_file": self.pki.ca, "https_port": self.host.port, "fetch_timeout": 10.0}
        return DelivererConfig(
            nameservers=[f"127.0.0.1:{self.dns.port}"],
            mta_sts=MtaSts(**(settings | sts)),  # type: ignore[arg-type]
        )


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    pki = make_pki(tmp_path / "sts", cn=f"mta-sts.{DOMAIN}")
    async with DnsServer(sts_records(DOMAIN, "20261207")) as dns, PolicyHost(pki) as host:
        yield Lab(dns, host, pki)


async def test_a_policy_is_fetched_from_the_policy_host(lab: Lab) -> None:
    source = MtaStsSource.create(lab.config(), None)
    try:
        policy = await source.host_policy(DOMAIN, "mx1.example.test", False)
        assert policy is not None and policy.enforce and policy.refused is None
        assert policy.report.strings == (
            "version: STSv1",
            "mode: enforce",
            "mx: *.example.test",
            "max_age: 86400",
        )
        outside = await source.host_policy(DOMAIN, "mx.other.test", False)
        assert outside is not None and outside.refused is not None
        assert lab.host.requests == 1  # the second lookup came from the cache
        assert lab.host.hosts == [f"mta-sts.{DOMAIN}:{lab.host.port}"]
        assert ("_mta-sts.example.test", "TXT") in lab.dns.queries
    finally:
        await source.close()


async def failure_of(lab: Lab, **sts: object) -> str:
    source = MtaStsSource.create(lab.config(**sts), None)
    try:
        # No policy: the configuration decides, the failure rides along for TLS-RPT.
        unfetched = await source.host_policy(DOMAIN, "mx1.example.test", False)
        assert unfetched is not None and unfetched.inherit and unfetched.noted is not None
        failure = source.failures[DOMAIN]
        assert unfetched.noted.result_type == failure.result_type
        return f"{failure.result_type}: {failure}"
    finally:
        await source.close()


async def test_a_redirect_is_not_followed(lab: Lab) -> None:
    lab.host.respond("", status=301, headers={"Location": "https://elsewhere.test/policy"})
    failure = await failure_of(lab)
    assert failure.startswith(f"{ResultType.STS_POLICY_FETCH_ERROR}:")
    assert "redirects to https://elsewhere.test/policy" in failure
    assert lab.host.requests == 1


async def test_an_oversize_policy_is_refused(lab: Lab) -> None:
    lab.host.respond(ENFORCE + "x: " + "y" * 70000 + "\n")
    failure = await failure_of(lab)
    assert failure.startswith(ResultType.STS_POLICY_FETCH_ERROR) and "more than 65536" in failure


async def test_an_oversize_policy_without_content_length_is_refused(lab: Lab) -> None:
    lab.host.respond(ENFORCE + "x: " + "y" * 2000 + "\n", chunked=True)
    failure = await failure_of(lab, max_policy_bytes=1024)
    assert failure.startswith(ResultType.STS_POLICY_FETCH_ERROR) and "more than 1024" in failure


async def test_the_size_limit_admits_a_policy_of_exactly_that_size(lab: Lab) -> None:
    body = ENFORCE + "x: " + "y" * (1024 - len(ENFORCE) - 4) + "\n"
    assert len(body) == 1024
    lab.host.respond(body, chunked=True)
    source = MtaStsSource.create(lab.config(max_policy_bytes=1024), None)
    try:
        assert await source.host_policy(DOMAIN, "mx1.example.test", False) is not None
    finally:
        await source.close()


@pytest.mark.parametrize(
    ("status", "headers", "body", "words"),
    [
        (404, None, "not found", "answered HTTP 404"),
        (200, {"Content-Type": "text/html"}, ENFORCE, "media type 'text/html'"),
        (
            200,
            {"Content-Type": "text/plain; charset=utf-8"},
            "mode: enforce\n",
            "sts-policy-invalid",
        ),
    ],
)
async def test_bad_answers(
    lab: Lab, status: int, headers: dict[str, str] | None, body: str, words: str
) -> None:
    lab.host.respond(body, status=status, headers=headers)
    assert words in await failure_of(lab)


async def test_a_certificate_from_an_untrusted_ca_is_sts_webpki_invalid(
    lab: Lab, tmp_path: Path
) -> None:
    stranger = make_pki(tmp_path / "stranger")
    failure = await failure_of(lab, ca_file=stranger.ca)
    assert failure.startswith(f"{ResultType.STS_WEBPKI_INVALID}:")
    assert lab.host.requests == 0


async def test_a_certificate_for_another_name_is_sts_webpki_invalid(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "wrong", cn="www.example.test")
    async with DnsServer(sts_records(DOMAIN, "1")) as dns, PolicyHost(pki) as host:
        failure = await failure_of(Lab(dns, host, pki))
    assert failure.startswith(f"{ResultType.STS_WEBPKI_INVALID}:") and "mismatch" in failure


async def test_no_address_for_the_policy_host_is_a_fetch_error(lab: Lab) -> None:
    lab.dns.set(f"mta-sts.{DOMAIN}", [])
    assert "has no address" in await failure_of(lab)


@pytest.mark.parametrize("kind", ["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
async def test_the_cache_survives_a_restart(
    kind: str, lab: Lab, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async def started() -> Bus:
        bus = bus_of_kind(kind, request, tmp_path, "mtasts")
        await bus.start()
        await bus.ensure_topics([MTA_STS.name])
        return bus

    bus = await started()
    first = MtaStsSource.create(lab.config(), bus)
    try:
        await first.cache.load()
        assert await first.host_policy(DOMAIN, "mx1.example.test", False) is not None
        fetched = first.cache.get(DOMAIN)
    finally:
        await first.close()
        await bus.close()
    assert lab.host.requests == 1

    lab.host.respond("", status=503)  # after the restart the policy host is down
    bus = await started()
    second = MtaStsSource.create(lab.config(), bus)
    try:
        await second.cache.load()
        assert second.cache.get(DOMAIN) == fetched
        policy = await second.host_policy(DOMAIN, "mx.other.test", False)
        assert policy is not None and policy.refused is not None  # still enforced
        assert lab.host.requests == 1 and DOMAIN not in second.failures
        table = await bus.read_table(MTA_STS.name)
        assert msgspec.msgpack.decode(table[DOMAIN.encode()])["policy_id"] == "20261207"
    finally:
        await second.close()
        await bus.close()


@pytest.mark.parametrize("kind", ["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
async def test_a_policy_one_replica_fetched_serves_another(
    kind: str, lab: Lab, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    buses = [bus_of_kind(kind, request, tmp_path, f"mtasts{n}") for n in (1, 2)]
    for bus in buses:
        await bus.start()
        await bus.ensure_topics([MTA_STS.name])
    fetching, following = (MtaStsSource.create(lab.config(), bus) for bus in buses)
    stopping, arrived = asyncio.Event(), asyncio.Event()
    keep = following.cache.keep

    def keep_and_tell(policy: MtaStsPolicy) -> None:
        keep(policy)
        arrived.set()

    following.cache.keep = keep_and_tell  # type: ignore[method-assign]
    follower = asyncio.ensure_future(following.cache.follow(stopping))
    try:
        await following.cache.load()
        assert await fetching.host_policy(DOMAIN, "mx1.example.test", False) is not None
        await asyncio.wait_for(arrived.wait(), 60)  # a bound on a hang, not a measurement
        assert following.cache.get(DOMAIN) == fetching.cache.get(DOMAIN)
        policy = await following.host_policy(DOMAIN, "mx.other.test", False)
        assert policy is not None and policy.refused is not None
        assert lab.host.requests == 1  # the second replica did not fetch
    finally:
        stopping.set()
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
        for source in (fetching, following):
            await source.close()
        for bus in buses:
            await bus.close()

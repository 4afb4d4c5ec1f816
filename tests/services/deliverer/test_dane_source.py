"""DANE policy decisions (RFC 7672 2.2) from TLSA records that a real unbound validated."""

from __future__ import annotations

import random
from pathlib import Path

from services.deliverer.mx import MxResolver
from services.deliverer.transport.dane import DaneCheck, DaneSource
from services.deliverer.transport.policy import PolicyReport, ResultType, Security
from testing.unbound import validating

EE = "3 1 1 " + "ab" * 32
TA = "2 0 1 " + "cd" * 32
PKIX = "1 1 1 " + "ef" * 32

RECORDS = {
    "dane.test": [("MX", "10 mx1.dane.test.")],
    "mx1.dane.test": [("A", "127.0.0.2")],
    "_25._tcp.mx1.dane.test": [("TLSA", EE), ("TLSA", TA), ("TLSA", PKIX)],
    "mx2.dane.test": [("A", "127.0.0.3")],  # no TLSA
    "mx3.dane.test": [("A", "127.0.0.4")],
    "_25._tcp.mx3.dane.test": [("TLSA", EE), ("BOGUS", "")],
    "mx4.dane.test": [("A", "127.0.0.5")],
    "_25._tcp.mx4.dane.test": [("TLSA", PKIX), ("TLSA", "3 1 9 abcd")],
    "_25._tcp.mx1.plain.test": [("TLSA", EE)],
}


def _source(address: str, *, enabled: bool = True) -> DaneSource:
    resolver = MxResolver([address], timeout=5.0, rng=random.Random(1), dnssec=True)
    return DaneSource(resolver, enabled=enabled)


async def test_usable_records_make_dane_mandatory(tmp_path: Path, unbound_binary: str) -> None:
    async with validating(RECORDS, ["dane.test"], tmp_path, binary=unbound_binary) as (_, ub):
        policy = await _source(ub.address).host_policy("dest.test", "mx1.dane.test", True)
        assert policy is not None
        assert (policy.security, policy.require_tls, policy.verify_webpki, policy.enforce) == (
            Security.DANE,
            True,
            False,
            True,
        )
        assert policy.refused is None
        assert isinstance(policy.check, DaneCheck)
        assert sorted(f"{r.usage} {r.selector} {r.mtype}" for r in policy.check.records) == [
            "2 0 1",
            "3 1 1",
        ]  # PKIX-EE left out (RFC 7672 3.1.3)
        assert policy.report.domain == "dest.test" and policy.report.type == "tlsa"
        assert sorted(policy.report.strings) == sorted([EE, TA, PKIX])


async def test_no_dane_without_secure_mx_or_tlsa(tmp_path: Path, unbound_binary: str) -> None:
    async with validating(RECORDS, ["dane.test"], tmp_path, binary=unbound_binary) as (_, ub):
        source = _source(ub.address)
        # An insecure MX host is never looked up (RFC 7672 2.2).
        assert await source.host_policy("dest.test", "mx1.dane.test", False) is None
        assert await source.host_policy("dest.test", "mx2.dane.test", True) is None  # NXDOMAIN
        # TLSA records without the AD bit (an unsigned zone) do not count.
        assert await source.host_policy("dest.test", "mx1.plain.test", True) is None
        disabled = _source(ub.address, enabled=False)
        assert await disabled.host_policy("dest.test", "mx1.dane.test", True) is None


async def test_bogus_tlsa_refuses_the_host(tmp_path: Path, unbound_binary: str) -> None:
    async with validating(RECORDS, ["dane.test"], tmp_path, binary=unbound_binary) as (_, ub):
        policy = await _source(ub.address).host_policy("dest.test", "mx3.dane.test", True)
        assert policy is not None and policy.refused is not None
        assert policy.refused.result_type is ResultType.DNSSEC_INVALID
        assert "_25._tcp.mx3.dane.test" in policy.refused.detail
        assert policy.security is Security.DANE
        assert policy.report == PolicyReport(domain="dest.test", type="tlsa")


async def test_unusable_records_still_require_tls(tmp_path: Path, unbound_binary: str) -> None:
    async with validating(RECORDS, ["dane.test"], tmp_path, binary=unbound_binary) as (_, ub):
        policy = await _source(ub.address).host_policy("dest.test", "mx4.dane.test", True)
        assert policy is not None
        assert (policy.security, policy.require_tls, policy.check, policy.refused) == (
            Security.DANE,
            True,
            None,
            None,
        )
        assert len(policy.report.strings) == 2

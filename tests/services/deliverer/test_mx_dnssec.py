"""MX resolution with DNSSEC: a real unbound validating the signed test zone decides
``MxHost.secure`` (RFC 7672 2.2), not a flag the test sets."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from services.deliverer.mx import MxResolver
from services.deliverer.outcome import DNS_TEMPORARY, DeliveryFailure
from testing.unbound import Unbound, validating

RECORDS = {
    # MX and host in the signed zone: secure.
    "dane.test": [("MX", "10 mx1.dane.test."), ("MX", "20 mx1.plain.test.")],
    "mx1.dane.test": [("A", "127.0.0.2")],
    "_25._tcp.mx1.dane.test": [("TLSA", "3 1 1 " + "ab" * 32)],
    # A signed domain without MX: the implicit MX is secure when its absence is.
    "implicit.dane.test": [("A", "127.0.0.4")],
    # A secure MX RRset naming a host whose address records are bogus.
    "badhost.dane.test": [("MX", "10 bogus.dane.test.")],
    "bogus.dane.test": [("A", "127.0.0.5"), ("BOGUS", "")],
    # An unsigned domain whose MX host is in the signed zone: the MX is insecure.
    "plain.test": [("MX", "10 mx1.dane.test.")],
    "mx1.plain.test": [("A", "127.0.0.3")],
}


def _resolver(ub: Unbound, dnssec: bool = True) -> MxResolver:
    return MxResolver([ub.address], timeout=5.0, rng=random.Random(1), dnssec=dnssec)


async def test_secure_only_when_mx_and_addresses_validate(
    tmp_path: Path, unbound_binary: str
) -> None:
    async with validating(RECORDS, ["dane.test"], tmp_path, binary=unbound_binary) as (_, ub):
        resolver = _resolver(ub)
        hosts = await resolver.resolve("dane.test")
        assert [(h.name, h.secure) for h in hosts] == [
            ("mx1.dane.test", True),
            ("mx1.plain.test", False),  # secure MX RRset, unsigned address records
        ]
        implicit = await resolver.resolve("implicit.dane.test")
        assert [(h.name, h.addresses, h.secure) for h in implicit] == [
            ("implicit.dane.test", ("127.0.0.4",), True)
        ]
        insecure = await resolver.resolve("plain.test")
        assert [(h.name, h.secure) for h in insecure] == [("mx1.dane.test", False)]


async def test_bogus_address_records_are_a_temporary_failure(
    tmp_path: Path, unbound_binary: str
) -> None:
    async with validating(RECORDS, ["dane.test"], tmp_path, binary=unbound_binary) as (_, ub):
        with pytest.raises(DeliveryFailure) as failure:
            await _resolver(ub).resolve("badhost.dane.test")
        assert failure.value.reply is DNS_TEMPORARY


async def test_ad_bit_ignored_without_dnssec(tmp_path: Path, unbound_binary: str) -> None:
    async with validating(RECORDS, ["dane.test"], tmp_path, binary=unbound_binary) as (_, ub):
        hosts = await _resolver(ub, dnssec=False).resolve("dane.test")
        assert [h.secure for h in hosts] == [False, False]
        answer = await _resolver(ub, dnssec=False).lookup("_25._tcp.mx1.dane.test", "TLSA")
        assert answer.secure is False


async def test_lookup_keeps_the_ad_bit_per_answer(tmp_path: Path, unbound_binary: str) -> None:
    async with validating(RECORDS, ["dane.test"], tmp_path, binary=unbound_binary) as (_, ub):
        resolver = _resolver(ub)
        tlsa = await resolver.lookup("_25._tcp.mx1.dane.test", "TLSA")
        assert tlsa.values == ("3 1 1 " + "ab" * 32,) and tlsa.secure
        none = await resolver.lookup("_25._tcp.mx2.dane.test", "TLSA")
        assert none.values is None and none.secure  # a validated NXDOMAIN
        unsigned = await resolver.lookup("_25._tcp.mx1.plain.test", "TLSA")
        assert unsigned.values is None and not unsigned.secure
        with pytest.raises(DeliveryFailure) as failure:
            await resolver.lookup("bogus.dane.test", "A")
        assert failure.value.reply is DNS_TEMPORARY

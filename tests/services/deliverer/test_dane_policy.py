"""``DaneSource``'s decision (RFC 7672 2.2) from the resolver's answer, as a table: pure
logic, so a stub stands for the resolver's validated answer. ``test_dane_source.py`` asks a
real validating unbound for the same decisions end to end; this one is fast enough for
``make mutation`` to run for every mutant of ``dane.py``."""

from __future__ import annotations

import datetime

import pytest

from services.deliverer.mx import SecureAnswer
from services.deliverer.outcome import DNS_TEMPORARY, DeliveryFailure
from services.deliverer.transport.dane import DaneCheck, DaneSource, Tlsa
from services.deliverer.transport.policy import (
    HostPolicy,
    PolicyReport,
    ResultType,
    Security,
)

EE = "3 1 1 " + "ab" * 32
TA = "2 0 1 " + "cd" * 32
PKIX = "1 1 1 " + "ef" * 32
NOW = datetime.datetime(2030, 6, 1, 12, 0, tzinfo=datetime.UTC)


def clock() -> datetime.datetime:
    return NOW


class Resolver:
    """Answers every lookup with ``answer`` (or raises ``failure``), noting what was asked."""

    def __init__(
        self, answer: SecureAnswer | None = None, failure: DeliveryFailure | None = None
    ) -> None:
        self.answer = answer
        self.failure = failure
        self.asked: list[tuple[str, str]] = []

    async def lookup(self, name: str, rdtype: str) -> SecureAnswer:
        self.asked.append((name, rdtype))
        if self.failure is not None:
            raise self.failure
        assert self.answer is not None
        return self.answer


async def test_usable_records_make_dane_the_check() -> None:
    resolver = Resolver(SecureAnswer((EE, "3 1 1 zz", TA, PKIX, "2 0"), secure=True))
    policy = await DaneSource(resolver, clock=clock).host_policy(
        "dest.test", "MX1.Dest.Test.", True
    )
    # The TLSA name of the MX host on port 25 (RFC 7672 2.2.2), lower case, no final dot.
    assert resolver.asked == [("_25._tcp.mx1.dest.test", "TLSA")]
    usable = (Tlsa.parse(EE), Tlsa.parse(TA))  # malformed and PKIX records left out
    assert policy == HostPolicy(
        Security.DANE,
        require_tls=True,
        verify_webpki=False,
        check=DaneCheck(usable, clock),
        enforce=True,
        report=PolicyReport(
            domain="dest.test", type="tlsa", strings=(EE, "3 1 1 zz", TA, PKIX, "2 0")
        ),
    )


async def test_the_port_names_the_tlsa_records() -> None:
    resolver = Resolver(SecureAnswer((EE,), secure=True))
    await DaneSource(resolver, port=2525).host_policy("dest.test", "mx1.dest.test", True)
    assert resolver.asked == [("_2525._tcp.mx1.dest.test", "TLSA")]


async def test_without_a_clock_the_check_uses_utc_now() -> None:
    policy = await DaneSource(Resolver(SecureAnswer((EE,), secure=True))).host_policy(
        "dest.test", "mx1.dest.test", True
    )
    assert policy is not None and isinstance(policy.check, DaneCheck)
    assert policy.check.clock().utcoffset() == datetime.timedelta(0)  # aware, UTC


async def test_only_unusable_records_still_require_tls() -> None:
    # RFC 7672 2.2: the domain asked for TLS; none of its records can authenticate.
    resolver = Resolver(SecureAnswer((PKIX, "3 1 1 abcd"), secure=True))
    policy = await DaneSource(resolver).host_policy("dest.test", "mx1.dest.test", True)
    assert policy == HostPolicy(
        Security.DANE,
        require_tls=True,
        enforce=True,
        report=PolicyReport(domain="dest.test", type="tlsa", strings=(PKIX, "3 1 1 abcd")),
    )


@pytest.mark.parametrize(
    ("answer", "secure_mx", "enabled"),
    [
        (SecureAnswer((EE,), secure=True), False, True),  # insecure MX host: not asked
        (SecureAnswer((EE,), secure=True), True, False),  # DANE turned off: not asked
        (SecureAnswer((EE,), secure=False), True, True),  # TLSA without the AD bit
        (SecureAnswer(None, secure=True), True, True),  # securely none (NXDOMAIN, NODATA)
        (SecureAnswer((), secure=True), True, True),
    ],
)
async def test_no_dane_policy(answer: SecureAnswer, secure_mx: bool, enabled: bool) -> None:
    resolver = Resolver(answer)
    source = DaneSource(resolver, enabled=enabled)
    assert await source.host_policy("dest.test", "mx1.dest.test", secure_mx) is None
    assert bool(resolver.asked) is (secure_mx and enabled)


@pytest.mark.parametrize(
    ("failure", "why"),
    [
        (
            DeliveryFailure(DNS_TEMPORARY, "resolver 127.0.0.1:53 answered SERVFAIL"),
            "resolver 127.0.0.1:53 answered SERVFAIL",
        ),
        (DeliveryFailure(DNS_TEMPORARY), DNS_TEMPORARY.text),  # no detail: the reply's text
    ],
)
async def test_a_failed_tlsa_lookup_refuses_the_host(failure: DeliveryFailure, why: str) -> None:
    # RFC 7672 2.2.1: bogus or unobtainable TLSA records of a secure host: not that host.
    policy = await DaneSource(Resolver(failure=failure)).host_policy(
        "dest.test", "mx1.dest.test", True
    )
    assert policy is not None and policy.refused is not None
    refused = policy.refused
    assert (refused.result_type, refused.detail) == (
        ResultType.DNSSEC_INVALID,
        f"TLSA lookup for _25._tcp.mx1.dest.test failed: {why}",
    )
    # TlsCheckFailed compares by identity: the rest of the policy, with that very refusal.
    assert policy == HostPolicy(
        Security.DANE,
        require_tls=True,
        refused=refused,
        report=PolicyReport(domain="dest.test", type="tlsa"),
    )

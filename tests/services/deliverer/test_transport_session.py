"""A host's transport policy applied to real SMTP sessions (aiosmtpd sinks with STARTTLS and
certificates from a test CA): an enforced policy never falls back to plaintext or to an
unverified peer, an unenforced one reports its failure and sends anyway, and the outcome
says what the connection achieved."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from services.deliverer.config import Timeouts
from services.deliverer.session import Session, SessionOptions, Target
from services.deliverer.transport.handshake import client_tls_context
from services.deliverer.transport.policy import (
    HostPolicy,
    PolicyReport,
    ResultType,
    Security,
    TlsCheckFailed,
)
from testing.pki import Pki, make_pki
from testing.smtpsink import SmtpSink, server_tls_context

HOST = "mx.dest.test"
STS = PolicyReport("dest.test", "sts", ("version: STSv1", "mode: enforce"), ("mx.dest.test",))


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki", cn=HOST)


def options(pki: Pki, policy: HostPolicy | None, tls: str = "opportunistic") -> SessionOptions:
    return SessionOptions(
        ehlo_name="relay.postline.test",
        timeouts=Timeouts(connect=5),
        tls=tls,  # type: ignore[arg-type]
        host_policy=policy,
        verified_context=client_tls_context(True, str(pki.ca)),
        unverified_context=client_tls_context(False),
    )


def target(sink: SmtpSink, host: str = HOST) -> Target:
    return Target(host=host, address=sink.host, port=sink.port)


def sts(enforce: bool) -> HostPolicy:
    return HostPolicy(
        Security.MTA_STS, require_tls=True, verify_webpki=True, enforce=enforce, report=STS
    )


async def test_a_verified_session_says_so(pki: Pki) -> None:
    async with SmtpSink(tls_context=pki.server_context()) as sink:
        session = await Session.open(target(sink), options(pki, sts(enforce=True)))
        await session.close()
    outcome = session.tls_outcome
    assert (outcome.security, outcome.verified, outcome.failure) == (Security.MTA_STS, True, None)
    assert outcome.version.startswith("TLSv1.")
    assert outcome.cipher
    assert (outcome.mx, outcome.mx_address) == (HOST, sink.host)
    assert outcome.report is STS


@pytest.mark.parametrize(
    ("sink_context", "host", "result"),
    [
        (lambda pki: pki.server_context(), "other.dest.test", ResultType.CERTIFICATE_HOST_MISMATCH),
        (lambda pki: server_tls_context(HOST), HOST, ResultType.CERTIFICATE_NOT_TRUSTED),
    ],
    ids=["wrong-name", "self-signed"],
)
async def test_an_enforced_policy_refuses_a_bad_certificate_and_sends_nothing(
    pki: Pki, sink_context: object, host: str, result: ResultType
) -> None:
    context = sink_context(pki)  # type: ignore[operator]
    async with SmtpSink(tls_context=context) as sink:
        with pytest.raises(TlsCheckFailed) as info:
            await Session.open(target(sink, host), options(pki, sts(enforce=True)))
    assert info.value.result_type is result
    assert info.value.outcome is not None
    assert info.value.outcome.failure is result
    assert info.value.outcome.mx == host
    assert not sink.messages


async def test_an_enforced_policy_never_falls_back_to_plaintext(pki: Pki) -> None:
    async with SmtpSink() as sink:  # no STARTTLS offered
        with pytest.raises(TlsCheckFailed) as info:
            await Session.open(target(sink), options(pki, sts(enforce=True)))
    assert info.value.result_type is ResultType.STARTTLS_NOT_SUPPORTED


async def test_a_testing_policy_reports_the_failure_and_sends_over_unverified_tls(
    pki: Pki,
) -> None:
    async with SmtpSink(tls_context=server_tls_context(HOST)) as sink:
        session = await Session.open(target(sink), options(pki, sts(enforce=False)))
        assert session.tls.startswith("TLSv1.")
        await session.close()
    outcome = session.tls_outcome
    assert outcome.failure is ResultType.CERTIFICATE_NOT_TRUSTED
    assert outcome.security is Security.MTA_STS
    assert not outcome.verified


async def test_a_testing_policy_without_starttls_sends_in_plaintext_and_reports(
    pki: Pki,
) -> None:
    async with SmtpSink() as sink:
        session = await Session.open(target(sink), options(pki, sts(enforce=False)))
        await session.close()
    assert session.tls == ""
    assert session.tls_outcome.failure is ResultType.STARTTLS_NOT_SUPPORTED


async def test_the_check_after_the_handshake_sees_the_peer_and_can_refuse(pki: Pki) -> None:
    seen: list[tuple[bytes, str]] = []

    def refuse(tls: ssl.SSLObject, host: str) -> None:
        seen.append((tls.getpeercert(binary_form=True) or b"", host))
        raise TlsCheckFailed(ResultType.VALIDATION_FAILURE, "no TLSA record matches")

    policy = HostPolicy(Security.DANE, require_tls=True, check=refuse)
    async with SmtpSink(tls_context=server_tls_context(HOST)) as sink:
        with pytest.raises(TlsCheckFailed) as info:
            await Session.open(target(sink), options(pki, policy))
    assert info.value.outcome is not None
    assert info.value.outcome.security is Security.DANE
    assert seen and seen[0][0].startswith(b"0") and seen[0][1] == HOST
    assert not sink.messages


async def test_a_passing_check_makes_the_session_verified_without_the_ca_store(
    pki: Pki,
) -> None:
    policy = HostPolicy(Security.DANE, require_tls=True, check=lambda tls, host: None)
    # A self-signed certificate the CA store would refuse: DANE does not consult it.
    async with SmtpSink(tls_context=server_tls_context(HOST)) as sink:
        session = await Session.open(target(sink), options(pki, policy))
        await session.close()
    assert (session.tls_outcome.security, session.tls_outcome.verified) == (Security.DANE, True)


async def test_opportunistic_without_starttls_is_plaintext_and_not_a_failure(pki: Pki) -> None:
    async with SmtpSink() as sink:
        session = await Session.open(target(sink), options(pki, None))
        await session.close()
    assert session.tls_outcome.security is Security.NONE
    assert session.tls_outcome.failure is None


async def test_required_by_configuration_maps_to_the_required_security(pki: Pki) -> None:
    async with SmtpSink(tls_context=server_tls_context(HOST)) as sink:
        session = await Session.open(target(sink), options(pki, None, tls="required"))
        await session.close()
    assert session.tls_outcome.security is Security.REQUIRED
    assert not session.tls_outcome.verified  # verify_certs is off

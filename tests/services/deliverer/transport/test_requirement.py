"""A message's TLS requirement applied to a host's policy, and the session reuse rule
(pure functions: no sockets needed to pin them)."""

from __future__ import annotations

import ssl

import pytest

from services.deliverer.outcome import Outcome, classify
from services.deliverer.transport.policy import (
    OPPORTUNISTIC,
    HostPolicy,
    PolicyReport,
    ResultType,
    Security,
    TlsCheckFailed,
    TlsOutcome,
)
from services.deliverer.transport.requirement import (
    REQUIRETLS_INSECURE_MX,
    REQUIRETLS_UNSUPPORTED,
    apply,
    meets,
    needs,
    refusal,
)
from shared.tlsrequire import NONE, TlsRequirement
from shared.wire.records import Delivery

REQUIRED = TlsRequirement(require_tls=True)
REQUIRETLS = TlsRequirement(require_tls=True, requiretls=True)
OPTIONAL = TlsRequirement(tls_optional=True)
STS_REPORT = PolicyReport(domain="dest.test", type="sts", mx_patterns=("*.dest.test",))
STS = HostPolicy(Security.MTA_STS, require_tls=True, verify_webpki=True, report=STS_REPORT)
STS_TESTING = HostPolicy(
    Security.MTA_STS, require_tls=True, verify_webpki=True, enforce=False, report=STS_REPORT
)
REFUSED = TlsCheckFailed(ResultType.VALIDATION_FAILURE, "mx.other.test not in the policy")


def tlsa_check(obj: ssl.SSLObject, host: str) -> None:
    """Stands for DANE's TLSA match."""


DANE = HostPolicy(Security.DANE, require_tls=True, check=tlsa_check)


def delivery(**flags: bool) -> Delivery:
    return Delivery(
        message_id="m",
        delivery_id="d",
        domain="dest.test",
        mail_from="",
        rcpt_to=(),
        data=b"",
        **flags,
    )


def test_the_delivery_flags_become_the_requirement() -> None:
    assert needs(delivery()) is NONE
    assert needs(delivery(require_tls=True)) == REQUIRED
    assert needs(delivery(requiretls=True, require_tls=True)) == REQUIRETLS
    assert needs(delivery(tls_optional=True)) == OPTIONAL
    # RFC 8689 4.1: with REQUIRETLS the TLS-Required field is ignored; our policy too.
    assert needs(delivery(requiretls=True, tls_optional=True)).tls_optional is False
    assert needs(delivery(require_tls=True, tls_optional=True)) == REQUIRED


def test_required_tls_over_an_opportunistic_host_needs_a_verified_certificate() -> None:
    strict = apply(OPPORTUNISTIC, REQUIRED)
    assert strict == HostPolicy(
        Security.REQUIRED, require_tls=True, verify_webpki=True, enforce=True
    )
    assert apply(HostPolicy(Security.NONE), REQUIRETLS).security is Security.REQUIRED


def test_required_tls_keeps_a_stronger_published_policy() -> None:
    assert apply(STS, REQUIRED) == STS
    # DANE's TLSA match stays the check (no WebPKI on top: RFC 7672 3.1.1 certificates
    # need not be issued by a public CA).
    assert apply(DANE, REQUIRED) == DANE
    # A testing-mode MTA-STS policy is enforced for a message that requires TLS.
    assert apply(STS_TESTING, REQUIRED) == STS


def test_tls_required_no_makes_published_policies_advisory() -> None:
    refused = HostPolicy(Security.MTA_STS, require_tls=True, verify_webpki=True, refused=REFUSED)
    relaxed = apply(refused, OPTIONAL)
    assert (relaxed.enforce, relaxed.refused) == (False, None)
    assert relaxed.verify_webpki and relaxed.security is Security.MTA_STS  # still reported
    assert apply(DANE, OPTIONAL).check is tlsa_check
    assert apply(OPPORTUNISTIC, NONE) is OPPORTUNISTIC
    # The operator's own "tls = required" for the destination is not the sender's to waive.
    configured = HostPolicy(Security.REQUIRED, require_tls=True, verify_webpki=True)
    assert apply(configured, OPTIONAL) is configured


def test_requiretls_needs_a_secure_mx_or_an_mta_sts_policy() -> None:
    assert refusal(REQUIRETLS, OPPORTUNISTIC, secure_mx=False) == REQUIRETLS_INSECURE_MX
    assert refusal(REQUIRETLS, OPPORTUNISTIC, secure_mx=True) is None
    assert refusal(REQUIRETLS, STS, secure_mx=False) is None
    assert refusal(REQUIRETLS, STS_TESTING, secure_mx=False) == REQUIRETLS_INSECURE_MX
    assert refusal(REQUIRED, OPPORTUNISTIC, secure_mx=False) is None


PLAIN = TlsOutcome(Security.OPPORTUNISTIC)
UNVERIFIED = TlsOutcome(Security.OPPORTUNISTIC, version="TLSv1.3")
VERIFIED = TlsOutcome(Security.REQUIRED, version="TLSv1.3", verified=True)
#: Verified, but a testing-mode policy's check failed: reported, not good enough to reuse.
TESTING_FAILURE = TlsOutcome(
    Security.MTA_STS, version="TLSv1.3", verified=True, failure=ResultType.VALIDATION_FAILURE
)
#: Not TLS at all, whatever the flag says (no version: the session stayed in cleartext).
VERIFIED_NO_VERSION = TlsOutcome(Security.REQUIRED, verified=True)


@pytest.mark.parametrize(
    ("opened_for", "outcome", "offers_requiretls", "need", "reusable"),
    [
        (NONE, PLAIN, False, NONE, True),
        (NONE, None, False, OPTIONAL, True),
        (NONE, PLAIN, False, REQUIRED, False),
        (NONE, UNVERIFIED, True, REQUIRED, False),
        (NONE, VERIFIED_NO_VERSION, True, REQUIRED, False),
        (NONE, TESTING_FAILURE, True, REQUIRED, False),
        (NONE, None, True, REQUIRED, False),
        (NONE, VERIFIED, False, REQUIRED, True),
        (NONE, VERIFIED, False, REQUIRETLS, False),
        (NONE, VERIFIED, True, REQUIRETLS, True),
        # A session that ignored the published policy carries only messages that asked so.
        (OPTIONAL, PLAIN, False, OPTIONAL, True),
        (OPTIONAL, PLAIN, False, NONE, False),
        (OPTIONAL, VERIFIED, True, REQUIRED, False),
        (REQUIRED, VERIFIED, False, NONE, True),  # stronger than needed is fine
    ],
)
def test_a_stricter_message_never_reuses_a_weaker_session(
    opened_for: TlsRequirement,
    outcome: TlsOutcome | None,
    offers_requiretls: bool,
    need: TlsRequirement,
    reusable: bool,
) -> None:
    # A bool, as the signature says: callers may store or compare it, not only test it.
    assert meets(opened_for, outcome, offers_requiretls, need) is reusable


def test_requiretls_failures_are_permanent_550_5_7_30() -> None:
    # RFC 8689 5 and the RFC 5248 registry: the sender asked for the message back rather
    # than sent without REQUIRETLS, and its DSN shows this code.
    for reply in (REQUIRETLS_UNSUPPORTED, REQUIRETLS_INSECURE_MX):
        assert (reply.code, reply.enhanced) == (550, "5.7.30")
        assert classify(reply).outcome is Outcome.BOUNCED

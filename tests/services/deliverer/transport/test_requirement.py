"""A message's TLS requirement applied to a host's policy, and the session reuse rule
(pure functions: no sockets needed to pin them)."""

from __future__ import annotations

import ssl

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


def test_a_stricter_message_never_reuses_a_weaker_session() -> None:
    plain = TlsOutcome(Security.OPPORTUNISTIC)
    unverified = TlsOutcome(Security.OPPORTUNISTIC, version="TLSv1.3")
    verified = TlsOutcome(Security.REQUIRED, version="TLSv1.3", verified=True)
    testing_failure = TlsOutcome(
        Security.MTA_STS, version="TLSv1.3", verified=True, failure=ResultType.VALIDATION_FAILURE
    )
    assert meets(NONE, plain, False, NONE) and meets(NONE, None, False, OPTIONAL)
    assert not meets(NONE, plain, False, REQUIRED)
    assert not meets(NONE, unverified, True, REQUIRED)
    assert not meets(NONE, testing_failure, True, REQUIRED)
    assert not meets(NONE, None, True, REQUIRED)
    assert meets(NONE, verified, False, REQUIRED)
    assert not meets(NONE, verified, False, REQUIRETLS)
    assert meets(NONE, verified, True, REQUIRETLS)
    # A session that ignored the published policy carries only messages that asked so.
    assert meets(OPTIONAL, plain, False, OPTIONAL)
    assert not meets(OPTIONAL, plain, False, NONE)
    assert not meets(OPTIONAL, verified, True, REQUIRED)
    assert meets(REQUIRED, verified, False, NONE)  # stronger than needed is fine

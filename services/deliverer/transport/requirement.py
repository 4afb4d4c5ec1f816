"""A message's own TLS requirement applied to the policy of one MX host.

Owns: :func:`needs` (the requirement a Delivery carries, ``shared.tlsrequire``),
:func:`apply` (the :class:`~services.deliverer.transport.policy.HostPolicy` a connection
must meet for that message: our "TLS required" and REQUIRETLS make it stricter,
``TLS-Required: No`` makes MTA-STS and DANE advisory), :func:`refusal` (RFC 8689 4.2.1: an
MX found neither through DNSSEC nor through an MTA-STS policy is no path for REQUIRETLS),
:func:`meets` (whether a connection already open may carry the message: sessions are reused
across messages, and a stricter message must never go over a weaker one) and the replies.
Pure functions: it neither looks anything up nor connects (``session.py``, ``pool.py``).
"""

from __future__ import annotations

from dataclasses import replace

from services.deliverer.transport.policy import (
    HostPolicy,
    Security,
    TlsOutcome,
)
from shared.tlsrequire import NONE, TlsRequirement
from shared.wire.records import Delivery, SmtpReply

#: RFC 8689 5 / RFC 5248 registry X.7.30: no next hop offered REQUIRETLS (permanent: the
#: sender asked for the message to be returned rather than sent without it).
REQUIRETLS_UNSUPPORTED = SmtpReply(code=550, enhanced="5.7.30", text="REQUIRETLS support required")
#: RFC 8689 4.2.1: the MX came from unsigned DNS and no MTA-STS policy vouches for it.
REQUIRETLS_INSECURE_MX = SmtpReply(
    code=550,
    enhanced="5.7.30",
    text="REQUIRETLS support required: MX neither DNSSEC-validated nor MTA-STS-listed",
)


#: The policies a recipient domain publishes, which ``TLS-Required: No`` makes advisory.
_PUBLISHED = frozenset({Security.MTA_STS, Security.DANE})


def needs(delivery: Delivery) -> TlsRequirement:
    """The TLS requirement ``delivery`` carries (settled at ingest)."""
    if not (delivery.require_tls or delivery.requiretls or delivery.tls_optional):
        return NONE
    return TlsRequirement(
        require_tls=delivery.require_tls or delivery.requiretls,
        requiretls=delivery.requiretls,
        # RFC 8689 4.1: REQUIRETLS wins over the field; so does our own requirement.
        tls_optional=delivery.tls_optional and not (delivery.require_tls or delivery.requiretls),
    )


def apply(policy: HostPolicy, need: TlsRequirement) -> HostPolicy:
    """The policy one connection must meet for a message with ``need``.

    - "TLS required" (and REQUIRETLS): never plaintext, a verified certificate, enforced.
      DANE's TLSA check (``check``) is at least as strong as WebPKI and stays the check;
      otherwise the handshake is verified against the CA store with the MX name, as
      MTA-STS does. The security label stays the published policy's when there is one.
    - ``TLS-Required: No``: a published policy (MTA-STS, DANE) is still applied and its
      failures reported, but not enforced, and the host is not refused (RFC 8689 5:
      deliver regardless of MTA-STS and DANE), over unverified TLS or cleartext when that
      is all there is, as for an MTA-STS ``testing`` policy. The operator's own
      ``tls = "required"`` for the destination is not the sender's to waive: it stays.
    """
    if need.require_tls:
        security = policy.security
        if security in (Security.NONE, Security.OPPORTUNISTIC):
            security = Security.REQUIRED
        return replace(
            policy,
            security=security,
            require_tls=True,
            verify_webpki=policy.check is None or policy.verify_webpki,
            enforce=True,
        )
    if need.tls_optional and policy.security in _PUBLISHED:
        # As MTA-STS "testing": checked and reported, then the best connection to be had.
        return replace(policy, enforce=False, refused=None)
    return policy


def refusal(need: TlsRequirement, policy: HostPolicy, secure_mx: bool) -> SmtpReply | None:
    """RFC 8689 4.2.1 (1): for REQUIRETLS the MX must come from DNSSEC-validated DNS or be
    listed by an MTA-STS policy in force; ``None`` when this host may be tried."""
    if not need.requiretls or secure_mx:
        return None
    if policy.security is Security.MTA_STS and policy.enforce and policy.refused is None:
        return None
    return REQUIRETLS_INSECURE_MX


def meets(
    opened_for: TlsRequirement,
    outcome: TlsOutcome | None,
    offers_requiretls: bool,
    need: TlsRequirement,
) -> bool:
    """Whether a session opened for a message with ``opened_for``, whose connection achieved
    ``outcome``, may carry a message with ``need``: a required-TLS message only over a
    verified TLS session, a REQUIRETLS one only to a host that offered REQUIRETLS, and a
    session opened with the published policy made advisory (``TLS-Required: No``) only
    messages that asked for that too. ``outcome`` ``None``: nothing known, so only a
    message without requirements may use it."""
    if opened_for.tls_optional and not need.tls_optional:
        return False
    if not need.require_tls:
        return True
    if outcome is None or not outcome.version or not outcome.verified or outcome.failure:
        return False
    return offers_requiretls or not need.requiretls

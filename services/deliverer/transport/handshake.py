"""TLS for the deliverer's SMTP client: the contexts it shakes hands with, and what a failed
handshake means in RFC 8460's words.

Owns :func:`client_tls_context` (verifying against the trust store with the MX name, or
not), :func:`certificate_result` (OpenSSL's verification error as an RFC 8460 4.3 result
type) and :func:`handshake_words` (the failure as the mail log says it). Does not decide
what a connection must achieve (``policy.py``) nor connect (``session.py``).
"""

from __future__ import annotations

import ssl

from services.deliverer.transport.policy import ResultType

#: OpenSSL's X509_V_ERR_* codes (x509_vfy.h) that RFC 8460 4.3 names a result type for.
_CERT_EXPIRED = frozenset({9, 10})  # not yet valid, has expired
_CERT_UNTRUSTED = frozenset({2, 18, 19, 20, 21, 27})  # self-signed, unknown issuer, untrusted
_HOST_MISMATCH = 62  # hostname mismatch


def certificate_result(exc: ssl.SSLCertVerificationError) -> ResultType:
    """The RFC 8460 result type of a failed certificate verification."""
    code = exc.verify_code
    if code == _HOST_MISMATCH:
        return ResultType.CERTIFICATE_HOST_MISMATCH
    if code in _CERT_EXPIRED:
        return ResultType.CERTIFICATE_EXPIRED
    if code in _CERT_UNTRUSTED:
        return ResultType.CERTIFICATE_NOT_TRUSTED
    return ResultType.VALIDATION_FAILURE


def handshake_words(exc: ssl.SSLError) -> str:
    """A failed handshake in words ("certificate has expired", "wrong version number")."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verification failed: {exc.verify_message}"
    return f"TLS handshake failed: {exc.reason or exc}"


def client_tls_context(verify: bool, ca_file: str | None = None) -> ssl.SSLContext:
    """A client TLS context; build it once and share it (loading the CA store costs ~20 ms).
    ``ca_file``: the certificates to trust instead of the system's store."""
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        # Opportunistic TLS between MTAs encrypts without authenticating (RFC 7435 1.3):
        # most MX certificates do not match the MX name.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context

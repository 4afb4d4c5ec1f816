"""``transport.handshake``: a failed WebPKI handshake's RFC 8460 result type
(``certificate_result``), from real handshakes against the test CA where one can be had,
from OpenSSL's codes for the rest; the failure in the mail log's words
(``handshake_words``); and what the two client contexts accept (``client_tls_context``)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.deliverer.transport.handshake import (
    certificate_result,
    client_tls_context,
    handshake_words,
)
from services.deliverer.transport.policy import ResultType
from testing.pki import Pki, make_pki


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[Pki, int]]:
    pki = make_pki(tmp_path / "server", cn="mx.example.test")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert, pki.key)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    yield pki, server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def handshake_error(
    port: int, context: ssl.SSLContext, name: str
) -> ssl.SSLCertVerificationError:
    with pytest.raises(ssl.SSLCertVerificationError) as failed:
        await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=name)
    return failed.value


async def test_host_mismatch(tls_server: tuple[Pki, int]) -> None:
    pki, port = tls_server
    error = await handshake_error(port, pki.client_context(), "other.example.test")
    assert certificate_result(error) is ResultType.CERTIFICATE_HOST_MISMATCH


async def test_unknown_issuer_is_not_trusted(tls_server: tuple[Pki, int], tmp_path: Path) -> None:
    _, port = tls_server
    stranger = make_pki(tmp_path / "stranger")
    error = await handshake_error(port, stranger.client_context(), "mx.example.test")
    assert certificate_result(error) is ResultType.CERTIFICATE_NOT_TRUSTED


@pytest.mark.parametrize(
    ("code", "result"),
    [
        (10, ResultType.CERTIFICATE_EXPIRED),
        (62, ResultType.CERTIFICATE_HOST_MISMATCH),
        (18, ResultType.CERTIFICATE_NOT_TRUSTED),
        (19, ResultType.CERTIFICATE_NOT_TRUSTED),
        (20, ResultType.CERTIFICATE_NOT_TRUSTED),
        (2, ResultType.CERTIFICATE_NOT_TRUSTED),  # unable to get the issuer's certificate
        (21, ResultType.CERTIFICATE_NOT_TRUSTED),  # unable to verify the leaf's signature
        (27, ResultType.CERTIFICATE_NOT_TRUSTED),  # certificate not trusted
        (3, ResultType.VALIDATION_FAILURE),  # unable to get the CRL
        (23, ResultType.VALIDATION_FAILURE),  # revoked: no RFC 8460 type of its own
        (9, ResultType.CERTIFICATE_EXPIRED),  # not yet valid: outside its validity too
    ],
)
def test_openssl_codes(code: int, result: ResultType) -> None:
    error = ssl.SSLCertVerificationError("certificate verify failed")
    error.verify_code = code
    assert certificate_result(error) is result


async def test_a_certificate_failure_in_words(tls_server: tuple[Pki, int]) -> None:
    pki, port = tls_server
    error = await handshake_error(port, pki.client_context(), "other.example.test")
    assert error.verify_message  # OpenSSL's words, e.g. "Hostname mismatch, ..."
    assert handshake_words(error) == f"certificate verification failed: {error.verify_message}"


async def test_a_handshake_with_a_plaintext_server_in_words() -> None:
    async def plaintext(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mx.example.test ESMTP\r\n")  # no TLS on this port
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(plaintext, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ssl.SSLError) as failed:
            await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_tls_context(False), server_hostname="mx"
            )
    finally:
        server.close()
        await server.wait_closed()
    assert handshake_words(failed.value) == "TLS handshake failed: WRONG_VERSION_NUMBER"


async def handshake_ok(port: int, context: ssl.SSLContext, name: str) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=name)
    writer.close()


async def test_the_verifying_context_checks_the_chain_and_the_mx_name(
    tls_server: tuple[Pki, int],
) -> None:
    pki, port = tls_server
    context = client_tls_context(True, str(pki.ca))
    await handshake_ok(port, context, "mx.example.test")
    error = await handshake_error(port, context, "other.example.test")
    assert certificate_result(error) is ResultType.CERTIFICATE_HOST_MISMATCH
    # Without a CA file the system's store is used, which does not know the test CA.
    error = await handshake_error(port, client_tls_context(True), "mx.example.test")
    assert certificate_result(error) is ResultType.CERTIFICATE_NOT_TRUSTED


async def test_the_opportunistic_context_encrypts_without_authenticating(
    tls_server: tuple[Pki, int],
) -> None:
    # RFC 7435 1.3: most MX certificates do not match the MX name; any certificate will do.
    _, port = tls_server
    await handshake_ok(port, client_tls_context(False), "other.example.test")

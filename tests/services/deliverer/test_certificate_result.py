"""``transport.handshake.certificate_result``: a failed WebPKI handshake's RFC 8460 result
type, from real handshakes against the test CA where one can be had, from OpenSSL's codes
for the rest."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.deliverer.transport.handshake import certificate_result
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
        (23, ResultType.VALIDATION_FAILURE),  # revoked: no RFC 8460 type of its own
        (9, ResultType.CERTIFICATE_EXPIRED),  # not yet valid: outside its validity too
    ],
)
def test_openssl_codes(code: int, result: ResultType) -> None:
    error = ssl.SSLCertVerificationError("certificate verify failed")
    error.verify_code = code
    assert certificate_result(error) is result

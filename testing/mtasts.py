"""A real MTA-STS policy host for tests: HTTPS on 127.0.0.1 (aiohttp), a test-CA certificate.

    pki = make_pki(tmp_path / "sts", cn="mta-sts.example.test")
    async with PolicyHost(pki, POLICY) as host:
        records = sts_records("example.test", "id1")   # for testing.dnsserver.DnsServer
        ... MtaSts(ca_file=pki.ca, https_port=host.port) ...

``host.respond`` replaces the answer (a status, headers, a body) while running;
``host.requests`` counts the requests. Only ``/.well-known/mta-sts.txt`` is served.
"""

from __future__ import annotations

import ssl
from types import TracebackType

from aiohttp import web

from shared.mtasts import WELL_KNOWN_PATH, policy_host, txt_name
from testing.pki import Pki

#: A policy in enforce mode for ``*.example.test`` MX hosts.
ENFORCE = "version: STSv1\r\nmode: enforce\r\nmx: *.example.test\r\nmax_age: 86400\r\n"


class PolicyHost:
    """Serve a policy over HTTPS with ``pki``'s certificate on 127.0.0.1 (ephemeral port)."""

    def __init__(self, pki: Pki, body: str = ENFORCE) -> None:
        self.pki = pki
        self.port = 0
        self.requests = 0
        self.hosts: list[str] = []  # the Host header of each request
        self.status = 200
        self.headers: dict[str, str] = {"Content-Type": "text/plain"}
        self.body: bytes = body.encode()
        self.chunked = False  # stream the body without a Content-Length
        self._runner: web.AppRunner | None = None

    def respond(
        self,
        body: str | bytes,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        chunked: bool = False,
    ) -> None:
        """Answer the next requests with this."""
        self.body = body.encode() if isinstance(body, str) else body
        self.status = status
        self.headers = {"Content-Type": "text/plain"} if headers is None else headers
        self.chunked = chunked

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.hosts.append(request.host)
        if self.chunked:
            response = web.StreamResponse(status=self.status, headers=self.headers)
            response.enable_chunked_encoding()
            await response.prepare(request)
            for start in range(0, len(self.body), 4096):
                await response.write(self.body[start : start + 4096])
            await response.write_eof()
            return response
        return web.Response(status=self.status, headers=self.headers, body=self.body)

    async def __aenter__(self) -> PolicyHost:
        app = web.Application()
        app.router.add_get(WELL_KNOWN_PATH, self._serve)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.pki.cert, self.pki.key)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def sts_records(
    domain: str, policy_id: str, address: str = "127.0.0.1"
) -> dict[str, list[tuple[str, str]]]:
    """DNS records for ``testing.dnsserver``: ``_mta-sts.<domain>`` TXT with ``policy_id`` and
    ``mta-sts.<domain>`` A ``address`` (where the :class:`PolicyHost` listens)."""
    return {
        txt_name(domain): [("TXT", f'"v=STSv1; id={policy_id}"')],
        policy_host(domain): [("A", address)],
    }

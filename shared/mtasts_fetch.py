"""Fetch an MTA-STS policy over HTTPS (RFC 8461 3.3) with aiohttp.

Owns :class:`PolicyFetcher`: one ``aiohttp.ClientSession`` whose connector validates the
policy host's certificate against the system CA store (or a configured CA file, for labs and
tests) with the policy host's name (SNI and Host are ``mta-sts.<domain>``), follows no
redirect (RFC 8461 3.3: "HTTP 3xx redirects MUST NOT be followed"), accepts only 200 with
media type ``text/plain``, reads at most ``max_bytes`` and gives up after a connect and a
total timeout. The host's address comes from the DNS servers the caller names
(:class:`DnsResolver`, the deliverer's ``nameservers``) or the system's. Every failure is a
:class:`~shared.mtasts.PolicyFetchError`, a certificate failure a
:class:`~shared.mtasts.PolicyWebPkiInvalid`, an unparsable policy a
:class:`~shared.mtasts.PolicyInvalid`. It caches nothing.

There is no limit on connections across hosts: a slow policy host holds only the fetches of
its own domain (the caller runs one at a time per domain).
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import aiohttp
import dns.asyncresolver
import dns.exception
import dns.resolver
from aiohttp.abc import AbstractResolver, ResolveResult

from shared.mtasts import (
    WELL_KNOWN_PATH,
    PolicyFetchError,
    PolicyInvalid,
    PolicyWebPkiInvalid,
    StsPolicy,
    parse_policy,
    policy_host,
)

#: RFC 8461 3.3 names no size; 64 KiB is what Postfix's and Google's fetchers allow.
DEFAULT_MAX_BYTES = 64 * 1024


def ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """A client context verifying certificates and names: the system store, or ``ca_file``."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)


class DnsResolver(AbstractResolver):
    """aiohttp's host lookups through a dnspython resolver (the deliverer's nameservers)."""

    def __init__(self, resolver: dns.asyncresolver.Resolver) -> None:
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The host's IPv4 then IPv6 addresses; raises ``OSError`` when it has none."""
        results: list[ResolveResult] = []
        kinds = [("A", socket.AF_INET), ("AAAA", socket.AF_INET6)]
        for rdtype, kind in kinds:
            if family not in (socket.AF_UNSPEC, kind):
                continue
            try:
                answer = await self._resolver.resolve(host, rdtype, search=False)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.DNSException as exc:
                raise OSError(f"no DNS answer for {host} ({rdtype}): {exc}") from exc
            results += [
                ResolveResult(
                    hostname=host,
                    host=rr.to_text(),
                    port=port,
                    family=kind,
                    proto=0,
                    flags=socket.AI_NUMERICHOST,
                )
                for rr in answer
            ]
        if not results:
            raise OSError(f"{host} has no address")
        return results

    async def close(self) -> None:
        """Nothing to release."""


class PolicyFetcher:
    """Fetches policies; :meth:`close` it when done (it owns an HTTP session)."""

    def __init__(
        self,
        *,
        ca_file: Path | None = None,
        resolver: dns.asyncresolver.Resolver | None = None,
        port: int = 443,
        connect_timeout: float = 5.0,
        timeout: float = 15.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._ssl = ssl_context(ca_file)
        self._resolver = resolver
        self._port = port
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._max_bytes = max_bytes
        self._session: aiohttp.ClientSession | None = None

    def url(self, domain: str) -> str:
        """The policy's URL for ``domain``."""
        port = "" if self._port == 443 else f":{self._port}"
        return f"https://{policy_host(domain)}{port}{WELL_KNOWN_PATH}"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                ssl=self._ssl,
                resolver=DnsResolver(self._resolver) if self._resolver is not None else None,
                limit=0,  # per-domain single flight bounds us; no host waits for another's
                force_close=True,  # a policy is fetched once per max_age: keep nothing open
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, trust_env=False
            )
        return self._session

    async def fetch_text(self, domain: str) -> str:
        """The policy file's text; raises :class:`PolicyFetchError` or
        :class:`PolicyWebPkiInvalid`."""
        url = self.url(domain)
        try:
            async with self._client().get(
                url, allow_redirects=False, headers={"Accept": "text/plain"}
            ) as answer:
                body = await self._read(answer, url)
        except aiohttp.ClientConnectorCertificateError as exc:
            raise PolicyWebPkiInvalid(f"{url}: {exc.certificate_error}") from exc
        except aiohttp.ClientSSLError as exc:  # no handshake: not an authentication failure
            raise PolicyFetchError(f"{url}: TLS failed: {exc}") from exc
        except aiohttp.ClientConnectorError as exc:  # DNS, refused, unreachable
            raise PolicyFetchError(f"{url}: cannot connect: {exc.os_error}") from exc
        except TimeoutError as exc:
            raise PolicyFetchError(f"{url}: timed out") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise PolicyFetchError(f"{url}: {type(exc).__name__}: {exc}") from exc
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyInvalid(f"{url} is not UTF-8 text") from exc

    async def _read(self, answer: aiohttp.ClientResponse, url: str) -> bytes:
        """The body of a 200 ``text/plain`` answer of at most ``max_bytes``."""
        if 300 <= answer.status < 400:
            where = answer.headers.get("Location", "?")
            raise PolicyFetchError(f"{url} redirects to {where}; RFC 8461 3.3 forbids following it")
        if answer.status != 200:
            raise PolicyFetchError(f"{url} answered HTTP {answer.status}")
        if answer.content_type != "text/plain":
            raise PolicyFetchError(f"{url} has media type {answer.content_type!r}, not text/plain")
        if (answer.content_length or 0) > self._max_bytes:
            raise PolicyFetchError(
                f"{url} is {answer.content_length} bytes, more than {self._max_bytes}"
            )
        body = await answer.content.read(self._max_bytes + 1)
        while len(body) <= self._max_bytes and not answer.content.at_eof():
            more = await answer.content.read(self._max_bytes + 1 - len(body))
            if not more:
                break
            body += more
        if len(body) > self._max_bytes:
            raise PolicyFetchError(f"{url} is more than {self._max_bytes} bytes")
        return body

    async def fetch(self, domain: str) -> StsPolicy:
        """The parsed policy of ``domain``; raises an :class:`~shared.mtasts.MtaStsError`."""
        return parse_policy(await self.fetch_text(domain))

    async def close(self) -> None:
        """Close the HTTP session (and its connections)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

"""SSRF rules for URLs that others choose: which URLs and addresses Postline may POST to.

A tenant chooses its webhook URLs, and any recipient domain chooses the ``https:`` rua its
TLS-RPT record names, so without rules they could make Postline POST into the operator's
own network (the cloud metadata service at 169.254.169.254, an admin port on loopback, a
database on a private range). The rules:

- the scheme is https; plain http only to loopback (127.0.0.0/8, ::1, ``localhost``) with
  ``allow_http_loopback`` (development);
- every address the request may connect to must be public: loopback, private (RFC 1918,
  fc00::/7), link-local, CGNAT (100.64.0.0/10, RFC 6598), multicast, unspecified and
  reserved ranges are refused unless ``allow_private_networks`` (or loopback with
  ``allow_http_loopback``). IPv4-mapped IPv6 addresses are judged as their IPv4 address.

The address is checked where the connection is made: :class:`GuardedResolver` is the
connector's resolver, so the addresses checked are the ones connected to, and a name that
resolves to a public address when the endpoint is added and to a private one later (DNS
rebinding) is refused then. An IP literal in the URL never reaches a resolver, so
:func:`check_url` checks it. Callers do not follow redirects.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from shared.errors import UrlInvalid, UrlRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LOOPBACK_NAMES = frozenset({"localhost", "localhost."})
#: RFC 6598 shared address space: not "private" to the ipaddress module, never public.
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True)
class Policy:
    """What the config allows beyond public https."""

    allow_private_networks: bool = False
    allow_http_loopback: bool = False


def address_allowed(address: IPAddress, policy: Policy) -> bool:
    """Whether a request may connect to ``address``."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return policy.allow_private_networks or policy.allow_http_loopback
    public = not (
        address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT)
    )
    return public or policy.allow_private_networks


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address literal."""
    literal = _literal(host)
    return host.lower() in LOOPBACK_NAMES or (literal is not None and literal.is_loopback)


def check_url(url: str, policy: Policy) -> str:
    """The URL's host, when the URL may be used; raises :class:`UrlInvalid` for a
    malformed URL and :class:`UrlRefused` for one the rules refuse."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise UrlInvalid(f"not a URL: {url!r}: {exc}") from exc
    if parts.scheme not in ("https", "http") or not host:
        raise UrlInvalid(f"expected https://host/path, got {url!r}")
    if parts.username or parts.password:
        raise UrlInvalid("the URL must carry no user name or password")
    if parts.scheme == "http" and not (policy.allow_http_loopback and is_loopback_host(host)):
        raise UrlRefused(f"{url}: only https (plain http only to loopback in development)")
    literal = _literal(host)
    if literal is not None and not address_allowed(literal, policy):
        raise UrlRefused(f"{url}: {literal} is not a public address")
    if host.lower() in LOOPBACK_NAMES and not address_allowed(
        ipaddress.ip_address("127.0.0.1"), policy
    ):
        raise UrlRefused(f"{url}: localhost is not a public address")
    return host


class GuardedResolver(AbstractResolver):
    """The connector's resolver: the system's answers, without the refused addresses.

    When every address of a name is refused, the lookup fails with
    :class:`UrlRefused` (a webhook counts it as ``refused``, never retried sooner).
    """

    def __init__(self, policy: Policy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host`` and keep only the addresses the policy allows."""
        results = await self._inner.resolve(host, port, family)
        allowed = [
            r for r in results if address_allowed(ipaddress.ip_address(r["host"]), self._policy)
        ]
        if not allowed:
            found = ", ".join(sorted({r["host"] for r in results}))
            raise UrlRefused(f"{host} resolves to no public address ({found})")
        return allowed

    async def close(self) -> None:
        """Release the inner resolver."""
        await self._inner.close()

"""Forward-confirmed reverse DNS of a source address, compared with its EHLO name.

Owns: :func:`check_source`, what ``postline pool check`` runs for each pool address: the PTR
records of the address, then the A (or AAAA) records of each PTR name; a name whose forward
lookup gives the address back is forward-confirmed (FCrDNS). The address passes when a
forward-confirmed PTR name is the EHLO name it greets with. Receivers check both: Gmail's
and Yahoo's sender requirements ask for a valid forward and reverse DNS on every sending IP,
Microsoft's for a PTR, and RFC 5321 4.1.4 lets a server note an EHLO name that does not match
the client's address (SpamAssassin, rspamd and Postfix's ``reject_unknown_client_hostname``
act on it).

Does not print (``shared/cli/pool.py`` does) and never raises for an answer it does not like:
a missing or wrong record is a mismatch; a failed lookup (timeout, SERVFAIL) an error.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.resolver
import dns.reversename

OK = "OK"
MISMATCH = "MISMATCH"
ERROR = "ERROR"


@dataclass(frozen=True)
class SourceCheck:
    """What DNS says about one source address."""

    address: str
    ehlo_name: str
    status: str  # OK, MISMATCH or ERROR
    ptr_names: tuple[str, ...] = ()  # every PTR name of the address
    confirmed: tuple[str, ...] = ()  # those whose forward lookup gives the address back
    detail: str = ""


def resolver_for(nameservers: Sequence[str], timeout: float = 5.0) -> dns.asyncresolver.Resolver:
    """A resolver asking ``nameservers`` (``ip`` or ``ip:port``; IPv6 as ``[ip]:port``), or
    the system's when there are none."""
    resolver = dns.asyncresolver.Resolver(configure=not nameservers)
    if nameservers:
        resolver.nameservers = [_nameserver(ns) for ns in nameservers]
    resolver.lifetime = timeout
    return resolver


def _nameserver(value: str) -> dns.nameserver.Nameserver:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or (host.count(":") and not host.endswith("]")):
        return dns.nameserver.Do53Nameserver(value.strip("[]"), 53)
    return dns.nameserver.Do53Nameserver(host.strip("[]"), int(port))


def _name(text: str) -> str:
    return text.lower().rstrip(".")


async def check_source(
    address: str, ehlo_name: str, resolver: dns.asyncresolver.Resolver
) -> SourceCheck:
    """PTR, forward confirmation and the EHLO name of ``address`` (see the module doc)."""
    ehlo = _name(ehlo_name)
    try:
        ptr_names = await _lookup(resolver, dns.reversename.from_address(address), "PTR")
        if not ptr_names:
            return SourceCheck(address, ehlo, MISMATCH, detail="no PTR record")
        family = "AAAA" if ipaddress.ip_address(address).version == 6 else "A"
        confirmed: list[str] = []
        forward: dict[str, list[str]] = {}
        for name in ptr_names:
            forward[name] = await _lookup(resolver, dns.name.from_text(name), family)
            if any(_same_ip(found, address) for found in forward[name]):
                confirmed.append(name)
    except _Failed as exc:
        return SourceCheck(address, ehlo, ERROR, detail=str(exc))
    names, ok = tuple(ptr_names), tuple(confirmed)
    if ehlo in confirmed:
        return SourceCheck(address, ehlo, OK, names, ok, f"PTR {ehlo} -> {address}")
    if not confirmed:
        seen = "; ".join(
            f"{name} -> {', '.join(forward[name]) or 'no ' + family}" for name in ptr_names
        )
        detail = f"PTR not forward-confirmed: {seen}"
    else:
        detail = f"EHLO name {ehlo} is not its PTR name {', '.join(confirmed)}"
    return SourceCheck(address, ehlo, MISMATCH, names, ok, detail)


def _same_ip(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


async def _lookup(
    resolver: dns.asyncresolver.Resolver, name: dns.name.Name, rdtype: str
) -> list[str]:
    """The answers (as text, lower case, no final dot); [] for NXDOMAIN or no data."""
    try:
        answer = await resolver.resolve(name, rdtype)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as exc:
        raise _Failed(
            f"{rdtype} {name.to_text(omit_final_dot=True)}: {type(exc).__name__}"
        ) from exc
    return sorted(_name(rr.to_text()) for rr in answer)


class _Failed(Exception):
    """A lookup failed: the answer is unknown (reported as ERROR)."""

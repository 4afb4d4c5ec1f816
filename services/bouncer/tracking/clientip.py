"""The address a tracking request came from, through the operator's trusted proxies.

TLS for the tracking host ends at the operator's ingress, so the connection's peer is the
ingress, and the client is in ``X-Forwarded-For``, which anyone can also write. The header
is read only when the peer is a trusted proxy, from the right (each proxy appends the
address it saw): the first address that is not a trusted proxy is the client. A malformed
entry ends the walk at the last address known good. With no trusted proxies (the default)
the header is ignored. Only the last ``X-Forwarded-For`` line reaches us (the HTTP layer
keeps one value per name), which is the one the nearest proxy wrote or appended to.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from services.bouncer.tracking.agents import Address, Network

#: Entries read from the right of the header at most (a client can send thousands).
MAX_HOPS = 16


def parse_address(text: str) -> Address | None:
    """An IP address, or ``None``. Tolerates what proxies write: a port ("192.0.2.1:443",
    "[2001:db8::1]:443"), a zone id; an IPv4-mapped IPv6 address (a dual-stack socket's
    peer) comes back as the IPv4 address it maps."""
    text = text.strip()
    if text.count(":") == 1:
        text = text.partition(":")[0]
    text = text.removeprefix("[").partition("]")[0].partition("%")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(remote: str, forwarded_for: str, trusted: Sequence[Network]) -> Address | None:
    """The client of a request whose peer is ``remote`` (see the module docstring)."""
    current = parse_address(remote)
    if current is None or not trusted:
        return current
    hops = [hop for hop in forwarded_for.split(",") if hop.strip()][-MAX_HOPS:]
    while hops and any(current in network for network in trusted):
        previous = parse_address(hops.pop())
        if previous is None:
            break
        current = previous
    return current

"""A real authoritative DNS server on 127.0.0.1 for tests (UDP and TCP, ephemeral port).

Tests find MX hosts, DKIM keys and SPF/DMARC records through it exactly as production
code does through a recursive resolver; nothing in the resolver is patched.

    records = {
        "example.test": [("MX", "10 mx1.example.test."), ("TXT", '"v=spf1 -all"')],
        "mx1.example.test": [("A", "127.0.0.2")],
        "broken.test": [("SERVFAIL", "")],
    }
    async with DnsServer(records) as dns:
        resolver.nameservers = ["127.0.0.1"]; resolver.port = dns.port

A name that is absent answers NXDOMAIN; a name that exists without the asked type answers
NOERROR with no answer (NODATA). ``dns.set(name, rrs)`` changes records while running.
Reverse DNS: ``ptr_records(address, name)`` (PTR plus the forward record of the name).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from types import TracebackType
from typing import cast

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset

Records = dict[str, list[tuple[str, str]]]


class DnsServer:
    """Serve ``records`` on 127.0.0.1; the UDP and TCP ports are the same number."""

    def __init__(self, records: Records, ttl: int = 60, host: str = "127.0.0.1") -> None:
        self.host = host
        self.ttl = ttl
        self.port = 0
        self.queries: list[tuple[str, str]] = []  # (name, type) in arrival order
        self._records: dict[dns.name.Name, list[tuple[str, str]]] = {}
        for name, rrs in records.items():
            self.set(name, rrs)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    def set(self, name: str, rrs: list[tuple[str, str]]) -> None:
        """Replace the records of ``name`` (an empty list makes it NXDOMAIN)."""
        key = dns.name.from_text(name)
        if rrs:
            self._records[key] = list(rrs)
        else:
            self._records.pop(key, None)

    async def __aenter__(self) -> DnsServer:
        loop = asyncio.get_running_loop()
        # Bind TCP first on port 0, then UDP on the same number (retry on the rare clash).
        for _ in range(20):
            tcp_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp_sock.bind((self.host, 0))
            port = tcp_sock.getsockname()[1]
            try:
                udp_transport, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpProtocol(self), local_addr=(self.host, port)
                )
            except OSError:
                tcp_sock.close()
                continue
            self._udp = udp_transport
            self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp_sock)
            self.port = port
            return self
        raise OSError("could not bind UDP and TCP on one port")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()

    def answer(self, wire: bytes) -> bytes:
        """The wire-format response to a wire-format query."""
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        self.queries.append(
            (question.name.to_text(omit_final_dot=True), dns.rdatatype.to_text(question.rdtype))
        )
        rrs = self._records.get(question.name)
        if rrs is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        if any(kind == "SERVFAIL" for kind, _ in rrs):
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        wanted = dns.rdatatype.to_text(question.rdtype)
        matching = [
            _split_txt(data) if kind == "TXT" else data for kind, data in rrs if kind == wanted
        ]
        if matching:
            rrset = dns.rrset.from_text_list(question.name, self.ttl, "IN", wanted, matching)
            response.answer.append(rrset)
        return response.to_wire()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                reply = self.answer(await reader.readexactly(length))
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        writer.close()


def _split_txt(data: str) -> str:
    # RFC 1035 3.3.14: one character-string holds at most 255 octets; DKIM keys are longer,
    # so a long single string is served as several (resolvers join them).
    text = data.strip()
    if not (text.startswith('"') and text.endswith('"') and text.count('"') == 2):
        return data
    body = text[1:-1]
    return " ".join(f'"{body[i : i + 255]}"' for i in range(0, len(body), 255))


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        reply = self.server.answer(data)
        if len(reply) > 512:
            # RFC 1035 4.2.1: truncate and let the client retry over TCP.
            query = dns.message.from_wire(data)
            short = dns.message.make_response(query)
            short.flags |= dns.flags.TC
            reply = short.to_wire()
        self.transport.sendto(reply, addr)


#: Loopback addresses the tests' MX hosts listen on (all of 127.0.0.0/8 is local on Linux).
LOOPBACKS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")


def mx_records(domain: str, *hosts: tuple[int, str]) -> dict[str, list[tuple[str, str]]]:
    """MX records for ``domain`` pointing at loopback addresses (preference, address)."""
    records: dict[str, list[tuple[str, str]]] = {domain: []}
    for index, (pref, address) in enumerate(hosts):
        name = f"mx{index}.{domain}"
        records[domain].append(("MX", f"{pref} {name}."))
        records[name] = [("A", address)]
    return records


def ptr_records(address: str, name: str, *, forward: str | None = None) -> Records:
    """A PTR record for ``address`` naming ``name``, and ``name``'s A (or AAAA) record giving
    ``forward`` (default: the address itself, forward-confirmed; "" for none)."""
    reverse = dns.reversename.from_address(address).to_text(omit_final_dot=True)
    back = address if forward is None else forward
    records: Records = {reverse: [("PTR", f"{name}.")]}
    if back:
        records[name] = [("AAAA" if ":" in back else "A", back)]
    return records

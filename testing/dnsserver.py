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

DNSSEC: ``DnsServer(records, signed=["dane.test"])`` signs every name under those zones
(one ECDSA P-256 key per zone, RFC 6605; SOA, NS and DNSKEY at the apex, an NSEC chain) and
answers a query with the DO bit with the RRSIGs and the NSEC records proving NXDOMAIN and
NODATA (RFC 4035 3.1), so a validating resolver given ``dns.trust_anchor("dane.test")``
finds answers secure. Names outside the signed zones are served unsigned as before. A
pseudo record ``("BOGUS", "")`` serves the signatures of the name's records corrupted (not
of its NSEC), which a validating resolver turns into SERVFAIL; ``("SERVFAIL", "")``
answers SERVFAIL itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import socket
import struct
from collections.abc import Iterable
from types import TracebackType
from typing import cast

import dns.dnssec
import dns.dnssectypes
import dns.flags
import dns.message
import dns.name
import dns.node
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.reversename
import dns.rrset
import dns.zone
from cryptography.hazmat.primitives.asymmetric import ec

Records = dict[str, list[tuple[str, str]]]


class DnsServer:
    """Serve ``records`` on 127.0.0.1; the UDP and TCP ports are the same number."""

    def __init__(
        self,
        records: Records,
        ttl: int = 60,
        host: str = "127.0.0.1",
        *,
        signed: Iterable[str] = (),
    ) -> None:
        self.host = host
        self.ttl = ttl
        self.port = 0
        self.queries: list[tuple[str, str]] = []  # (name, type) in arrival order
        self._records: dict[dns.name.Name, list[tuple[str, str]]] = {}
        self._zones = {
            dns.name.from_text(origin): _SignedZone(dns.name.from_text(origin), self)
            for origin in signed
        }
        for name, rrs in records.items():
            self.set(name, rrs)
        for zone in self._zones.values():
            zone.sign()  # now: a record dnspython cannot parse fails here, not in a reply
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    def set(self, name: str, rrs: list[tuple[str, str]]) -> None:
        """Replace the records of ``name`` (an empty list makes it NXDOMAIN)."""
        key = dns.name.from_text(name)
        if rrs:
            self._records[key] = list(rrs)
        else:
            self._records.pop(key, None)
        for zone in self._zones.values():
            if key.is_subdomain(zone.origin):
                zone.stale = True  # signed again at the next query

    def trust_anchor(self, zone: str) -> str:
        """The DS record of signed ``zone`` as presentation text, for a resolver's
        trust anchor (unbound's ``trust-anchor:``)."""
        return self._zones[dns.name.from_text(zone)].ds_text()

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
        signed = self._signed_zone(question.name)
        if signed is not None:
            signed.answer(question.name, question.rdtype, response, _wants_dnssec(query))
            return response.to_wire()
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

    def _signed_zone(self, name: dns.name.Name) -> _SignedZone | None:
        """The innermost signed zone holding ``name``, if any."""
        holders = [zone for origin, zone in self._zones.items() if name.is_subdomain(origin)]
        return max(holders, key=lambda zone: len(zone.origin), default=None)

    def zone_records(self, origin: dns.name.Name) -> dict[dns.name.Name, list[tuple[str, str]]]:
        """The records at and below ``origin`` (those of deeper signed zones excepted)."""
        return {
            name: rrs
            for name, rrs in self._records.items()
            if name.is_subdomain(origin) and self._signed_zone(name) is self._zones[origin]
        }

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
        query = dns.message.from_wire(data)
        # A DNSSEC client's EDNS buffer size is honoured (signed answers seldom fit in 512).
        limit = max(512, min(query.payload, 4096)) if _wants_dnssec(query) else 512
        if len(reply) > limit:
            # RFC 1035 4.2.1: truncate and let the client retry over TCP.
            short = dns.message.make_response(query)
            short.flags |= dns.flags.TC
            reply = short.to_wire()
        self.transport.sendto(reply, addr)


def _wants_dnssec(query: dns.message.Message) -> bool:
    return query.edns >= 0 and bool(query.ednsflags & dns.flags.DO)


#: The pseudo record types: not served, they change how a name is answered.
_PSEUDO = ("SERVFAIL", "BOGUS")


class _SignedZone:
    """One DNSSEC-signed zone of a :class:`DnsServer`: its key, and its records signed
    afresh (with an NSEC chain) whenever the server's records changed."""

    def __init__(self, origin: dns.name.Name, server: DnsServer) -> None:
        self.origin = origin
        self.server = server
        # One combined signing key (flags 257, SEP): the trust anchor and the signer.
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.dnskey = dns.dnssec.make_dnskey(
            self.key.public_key(), dns.dnssectypes.Algorithm.ECDSAP256SHA256, flags=257
        )
        self.stale = True
        self.zone = dns.zone.Zone(origin, relativize=False)
        self.names: list[dns.name.Name] = []  # canonical order (RFC 4034 6.1)
        self.bogus: set[dns.name.Name] = set()

    def ds_text(self) -> str:
        ds = dns.dnssec.make_ds(self.origin, self.dnskey, "SHA256")
        return f"{self.origin.to_text()} IN DS {ds.to_text()}"

    def sign(self) -> None:
        """Build and sign the zone from the server's records (NSEC chain included)."""
        ttl = self.server.ttl
        zone = dns.zone.Zone(self.origin, relativize=False)
        ns = dns.name.from_text("ns", self.origin)
        soa = f"{ns} hostmaster.{self.origin} 1 3600 600 86400 {ttl}"
        records = self.server.zone_records(self.origin)
        apex = records.get(self.origin, [])
        records[self.origin] = [("SOA", soa), ("NS", str(ns)), *apex]
        self.bogus = set()
        with zone.writer() as txn:
            for name, rrs in records.items():
                if any(kind == "BOGUS" for kind, _ in rrs):
                    self.bogus.add(name)
                kinds = dict.fromkeys(kind for kind, _ in rrs if kind not in _PSEUDO)
                for kind in kinds:
                    datas = [_split_txt(d) if kind == "TXT" else d for k, d in rrs if k == kind]
                    txn.add(dns.rrset.from_text_list(name, ttl, "IN", kind, datas))
        now = datetime.datetime.now(datetime.UTC)
        dns.dnssec.sign_zone(
            zone,
            keys=[(self.key, self.dnskey)],
            dnskey_ttl=ttl,
            inception=now - datetime.timedelta(hours=1),
            expiration=now + datetime.timedelta(days=2),
        )
        self.zone = zone
        self.names = sorted(zone.nodes)
        self.stale = False

    def answer(
        self,
        qname: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        response: dns.message.Message,
        dnssec: bool,
    ) -> None:
        """Fill ``response`` for a question in this zone (with proofs when ``dnssec``)."""
        if self.stale:
            self.sign()
        if qname in self.server._records and any(
            kind == "SERVFAIL" for kind, _ in self.server._records[qname]
        ):
            response.set_rcode(dns.rcode.SERVFAIL)
            return
        node = self.zone.get_node(qname)
        if node is not None:
            if self._add(response.answer, qname, node, rdtype, dnssec):
                return
            self._add_soa(response, dnssec)  # NODATA: the name's own NSEC lacks the type
            if dnssec:
                self._add(response.authority, qname, node, dns.rdatatype.NSEC, True)
            return
        self._add_soa(response, dnssec)
        if not any(name.is_subdomain(qname) for name in self.names):
            # NXDOMAIN: no such name, and no wildcard at its closest encloser (RFC 4035 3.1.3.2).
            response.set_rcode(dns.rcode.NXDOMAIN)
            encloser = qname.parent()
            while not any(name.is_subdomain(encloser) for name in self.names):
                encloser = encloser.parent()
            if dnssec:
                self._add_covering(response, dns.name.from_text("*", encloser))
        if dnssec:  # an empty non-terminal is NODATA, proved by the same covering NSEC
            self._add_covering(response, qname)

    def _add(
        self,
        section: list[dns.rrset.RRset],
        name: dns.name.Name,
        node: dns.node.Node,
        rdtype: dns.rdatatype.RdataType,
        dnssec: bool,
    ) -> bool:
        rdataset = node.get_rdataset(dns.rdataclass.IN, rdtype)
        if rdataset is None:
            return False
        if not any(rrset.name == name and rrset.rdtype == rdtype for rrset in section):
            section.append(dns.rrset.from_rdata_list(name, rdataset.ttl, list(rdataset)))
            sigs = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, rdtype)
            if dnssec and sigs is not None:
                rrsigs = [self._maybe_bogus(name, rdtype, sig) for sig in sigs]
                section.append(dns.rrset.from_rdata_list(name, sigs.ttl, rrsigs))
        return True

    def _maybe_bogus(
        self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, sig: dns.rdata.Rdata
    ) -> dns.rdata.Rdata:
        # The NSEC stays valid: it also proves other names absent, which must not fail too.
        if name not in self.bogus or rdtype == dns.rdatatype.NSEC:
            return sig
        broken = bytes(b ^ 0xFF for b in sig.signature)  # type: ignore[attr-defined]
        return sig.replace(signature=broken)

    def _add_soa(self, response: dns.message.Message, dnssec: bool) -> None:
        apex = self.zone.get_node(self.origin)
        assert apex is not None
        self._add(response.authority, self.origin, apex, dns.rdatatype.SOA, dnssec)

    def _add_covering(self, response: dns.message.Message, name: dns.name.Name) -> None:
        """The NSEC whose owner precedes ``name`` in canonical order (its next name follows)."""
        owner = max(n for n in self.names if n < name)  # the apex precedes every name below it
        node = self.zone.get_node(owner)
        assert node is not None
        self._add(response.authority, owner, node, dns.rdatatype.NSEC, True)


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

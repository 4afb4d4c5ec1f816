"""The signed test zone validates in a real unbound (the DANE tests rely on it): answers,
NXDOMAIN, NODATA and empty non-terminals are secure, a BOGUS name fails validation, the
unsigned zone beside it is insecure, and a change of records is signed again."""

from __future__ import annotations

from pathlib import Path

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from testing.dnsserver import DnsServer
from testing.unbound import validating

RECORDS = {
    "dane.test": [("MX", "10 mx1.dane.test.")],
    "mx1.dane.test": [("A", "127.0.0.2")],
    "_25._tcp.mx1.dane.test": [("TLSA", "3 1 1 " + "ab" * 32)],
    "_25._tcp.bogus.dane.test": [("TLSA", "3 1 1 " + "cd" * 32), ("BOGUS", "")],
    "mx1.plain.test": [("A", "127.0.0.3")],
}


async def _ask(port: int, name: str, rdtype: str) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, want_dnssec=True)
    return await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=5)


def _secure(reply: dns.message.Message) -> bool:
    return bool(reply.flags & dns.flags.AD)


async def test_signed_answers_and_denials_validate(tmp_path: Path, unbound_binary: str) -> None:
    async with validating(RECORDS, ["dane.test"], tmp_path, binary=unbound_binary) as (_, ub):
        cases = [
            ("dane.test", "MX", dns.rcode.NOERROR, 1),
            ("_25._tcp.mx1.dane.test", "TLSA", dns.rcode.NOERROR, 1),
            ("mx1.dane.test", "AAAA", dns.rcode.NOERROR, 0),  # NODATA
            ("_tcp.mx1.dane.test", "A", dns.rcode.NOERROR, 0),  # empty non-terminal
            ("_25._tcp.mx2.dane.test", "TLSA", dns.rcode.NXDOMAIN, 0),
            ("zzz.dane.test", "A", dns.rcode.NXDOMAIN, 0),  # after the last name: wraps
        ]
        for name, rdtype, rcode, answers in cases:
            reply = await _ask(ub.port, name, rdtype)
            data = [r for r in reply.answer if r.rdtype != dns.rdatatype.RRSIG]
            assert (reply.rcode(), len(data), _secure(reply)) == (rcode, answers, True), (
                name,
                rdtype,
                ub.log,
            )


async def test_bogus_fails_and_unsigned_is_insecure(tmp_path: Path, unbound_binary: str) -> None:
    async with validating(RECORDS, ["dane.test"], tmp_path, binary=unbound_binary) as (_, ub):
        bogus = await _ask(ub.port, "_25._tcp.bogus.dane.test", "TLSA")
        assert bogus.rcode() == dns.rcode.SERVFAIL
        plain = await _ask(ub.port, "mx1.plain.test", "A")
        assert plain.rcode() == dns.rcode.NOERROR and not _secure(plain)
        assert plain.answer[0][0].to_text() == "127.0.0.3"
        # A BOGUS name's NSEC stays valid: other denials next to it still validate.
        missing = await _ask(ub.port, "bogus2.dane.test", "A")
        assert missing.rcode() == dns.rcode.NXDOMAIN and _secure(missing)


async def test_changed_records_are_signed_again(tmp_path: Path, unbound_binary: str) -> None:
    async with validating(RECORDS, ["dane.test"], tmp_path, binary=unbound_binary) as (dns_, ub):
        dns_.set("late.dane.test", [("A", "127.0.0.9")])
        reply = await _ask(ub.port, "late.dane.test", "A")
        assert reply.rcode() == dns.rcode.NOERROR and _secure(reply)
        assert reply.answer[0][0].to_text() == "127.0.0.9"


async def test_signatures_only_for_dnssec_queries() -> None:
    async with DnsServer(RECORDS, signed=["dane.test"]) as server:
        plain = dns.message.make_query("mx1.dane.test", "A")
        reply = await dns.asyncquery.udp(plain, "127.0.0.1", port=server.port, timeout=5)
        assert [r.rdtype for r in reply.answer] == [dns.rdatatype.A]
        signed = dns.message.make_query("mx1.dane.test", "A", want_dnssec=True)
        reply = await dns.asyncquery.udp(signed, "127.0.0.1", port=server.port, timeout=5)
        assert sorted(r.rdtype for r in reply.answer) == [dns.rdatatype.A, dns.rdatatype.RRSIG]
        assert server.trust_anchor("dane.test").startswith("dane.test. IN DS ")

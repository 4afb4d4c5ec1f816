"""Forward-confirmed reverse DNS against a real DNS server on loopback: confirmed and equal to
the EHLO name, no PTR, a PTR name that does not resolve back, another name, a failed lookup."""

from __future__ import annotations

from shared.fcrdns import ERROR, MISMATCH, OK, check_source, resolver_for
from testing.dnsserver import DnsServer, Records, ptr_records


def records() -> Records:
    return {
        **ptr_records("192.0.2.1", "out1.postline.test"),
        **ptr_records("192.0.2.2", "out2.postline.test", forward="198.51.100.7"),
        **ptr_records("192.0.2.3", "mail.example.test"),
        **ptr_records("2001:db8::25", "out6.postline.test"),
        "4.2.0.192.in-addr.arpa": [("SERVFAIL", "")],
    }


async def test_fcrdns_outcomes() -> None:
    async with DnsServer(records()) as dns:
        resolver = resolver_for([f"127.0.0.1:{dns.port}"], timeout=2)
        good = await check_source("192.0.2.1", "OUT1.postline.test.", resolver)
        v6 = await check_source("2001:db8::25", "out6.postline.test", resolver)
        unconfirmed = await check_source("192.0.2.2", "out2.postline.test", resolver)
        other = await check_source("192.0.2.3", "out3.postline.test", resolver)
        missing = await check_source("192.0.2.9", "out9.postline.test", resolver)
        failed = await check_source("192.0.2.4", "out4.postline.test", resolver)
    assert (good.status, good.confirmed) == (OK, ("out1.postline.test",))
    assert v6.status == OK
    assert unconfirmed.status == MISMATCH
    assert unconfirmed.detail == ("PTR not forward-confirmed: out2.postline.test -> 198.51.100.7")
    assert (other.status, other.ptr_names, other.confirmed) == (
        MISMATCH,
        ("mail.example.test",),
        ("mail.example.test",),
    )
    assert "out3.postline.test is not its PTR name mail.example.test" in other.detail
    assert (missing.status, missing.detail) == (MISMATCH, "no PTR record")
    assert failed.status == ERROR and failed.detail.startswith("PTR 4.2.0.192.in-addr.arpa")

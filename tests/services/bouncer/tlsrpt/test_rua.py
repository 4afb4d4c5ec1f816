"""The _smtp._tls TXT record: parsing (RFC 8460 3) and the lookup through a real DNS server."""

from __future__ import annotations

import pytest

from services.bouncer.tlsrpt.rua import Rua, RuaLookupFailed, lookup_rua, parse_record
from shared.fcrdns import resolver_for
from testing.dnsserver import DnsServer


def test_parse_both_schemes() -> None:
    text = "v=TLSRPTv1; rua=mailto:reports@dest.test,https://reports.dest.test/v1/tlsrpt"
    assert parse_record([text]) == [
        Rua("mailto", "reports@dest.test"),
        Rua("https", "https://reports.dest.test/v1/tlsrpt"),
    ]


@pytest.mark.parametrize(
    "texts",
    [
        [],
        ["v=spf1 -all"],
        ["v=TLSRPTv1; rua=mailto:a@dest.test", "v=TLSRPTv1; rua=mailto:b@dest.test"],  # two
        ["v=TLSRPTv1; rua=http://insecure.dest.test/"],  # https only
        ["v=TLSRPTv2; rua=mailto:a@dest.test"],
        ["v=TLSRPTv1"],
    ],
)
def test_no_usable_record(texts: list[str]) -> None:
    assert parse_record(texts) == []


def test_other_records_are_ignored_and_mailto_queries_dropped() -> None:
    texts = ["v=spf1 -all", "v=TLSRPTv1 ;rua=mailto:tls%2Brpt@dest.test?subject=x ; x=y"]
    assert parse_record(texts) == [Rua("mailto", "tls+rpt@dest.test")]


async def test_lookup_through_dns() -> None:
    records = {
        "_smtp._tls.dest.test": [("TXT", '"v=TLSRPTv1; " "rua=mailto:r@dest.test"')],
        "_smtp._tls.broken.test": [("SERVFAIL", "")],
    }
    async with DnsServer(records) as dns:
        resolver = resolver_for([f"127.0.0.1:{dns.port}"], timeout=5)
        assert await lookup_rua(resolver, "dest.test") == [Rua("mailto", "r@dest.test")]
        assert await lookup_rua(resolver, "none.test") == []
        with pytest.raises(RuaLookupFailed):
            await lookup_rua(resolver, "broken.test")

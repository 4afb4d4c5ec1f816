"""The loopback DNS server answers like a real one (other tests rely on it)."""

from __future__ import annotations

import dns.asyncresolver
import dns.resolver
import pytest

from testing.dnsserver import DnsServer


def _resolver(port: int) -> dns.asyncresolver.Resolver:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port
    resolver.lifetime = 3
    return resolver


async def test_answers_nxdomain_nodata_servfail_and_long_txt() -> None:
    long_key = "A" * 400
    records = {
        "example.test": [("MX", "10 mx1.example.test."), ("MX", "20 mx2.example.test.")],
        "mx1.example.test": [("A", "127.0.0.2")],
        "sel._domainkey.example.test": [("TXT", f'"v=DKIM1; k=rsa; p={long_key}"')],
        "broken.test": [("SERVFAIL", "")],
    }
    async with DnsServer(records) as server:
        resolver = _resolver(server.port)
        mx = await resolver.resolve("example.test", "MX")
        assert sorted(r.to_text() for r in mx) == ["10 mx1.example.test.", "20 mx2.example.test."]
        txt = await resolver.resolve("sel._domainkey.example.test", "TXT")
        assert b"".join(txt[0].strings).decode().endswith(long_key)
        with pytest.raises(dns.resolver.NXDOMAIN):
            await resolver.resolve("missing.test", "MX")
        with pytest.raises(dns.resolver.NoAnswer):
            await resolver.resolve("mx1.example.test", "MX")
        with pytest.raises(dns.resolver.NoNameservers):
            await resolver.resolve("broken.test", "MX")
        server.set("late.test", [("A", "127.0.0.9")])
        assert (await resolver.resolve("late.test", "A"))[0].to_text() == "127.0.0.9"
        assert ("example.test", "MX") in server.queries

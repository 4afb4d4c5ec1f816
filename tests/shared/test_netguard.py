"""SSRF rules: URLs, addresses, and the client refusing without connecting."""

from __future__ import annotations

import ipaddress

import pytest

from services.webhooks.client import WebhookClient
from shared.errors import UrlInvalid, UrlRefused
from shared.netguard import GuardedResolver, Policy, address_allowed, check_url

STRICT = Policy()
DEV = Policy(allow_http_loopback=True)
PRIVATE = Policy(allow_private_networks=True)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # CGNAT
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "fc00::1",
        "fe80::1",
        "::ffff:10.0.0.1",  # IPv4-mapped private
        "::ffff:127.0.0.1",
    ],
)
def test_non_public_addresses_are_refused_by_default(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert not address_allowed(ip, STRICT)
    assert address_allowed(ip, PRIVATE)


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_allowed(ipaddress.ip_address(address), STRICT)


def test_loopback_only_with_the_development_switch() -> None:
    assert address_allowed(ipaddress.ip_address("127.0.0.1"), DEV)
    assert not address_allowed(ipaddress.ip_address("10.0.0.1"), DEV)


@pytest.mark.parametrize(
    ("url", "policy", "error"),
    [
        ("http://example.com/hook", STRICT, UrlRefused),
        ("http://example.com/hook", DEV, UrlRefused),
        ("http://127.0.0.1:8080/hook", STRICT, UrlRefused),
        ("https://10.0.0.5/hook", STRICT, UrlRefused),
        ("https://[::1]/hook", STRICT, UrlRefused),
        ("https://localhost/hook", STRICT, UrlRefused),
        ("ftp://example.com/hook", STRICT, UrlInvalid),
        ("https://user:pw@example.com/hook", STRICT, UrlInvalid),
        ("https:///nohost", STRICT, UrlInvalid),
        ("https://example.com:99999/", STRICT, UrlInvalid),
    ],
)
def test_urls_refused(url: str, policy: Policy, error: type[Exception]) -> None:
    with pytest.raises(error):
        check_url(url, policy)


@pytest.mark.parametrize(
    ("url", "policy"),
    [
        ("https://example.com/hook", STRICT),
        ("http://127.0.0.1:8080/hook", DEV),
        ("http://localhost/hook", DEV),
        ("https://10.0.0.5/hook", PRIVATE),
    ],
)
def test_urls_allowed(url: str, policy: Policy) -> None:
    check_url(url, policy)


async def test_the_resolver_drops_refused_addresses_of_a_name() -> None:
    # "localhost" resolves to loopback through the system resolver: refused when strict.
    with pytest.raises(UrlRefused):
        await GuardedResolver(STRICT).resolve("localhost", 443)
    allowed = await GuardedResolver(DEV).resolve("localhost", 443)
    assert allowed and all(ipaddress.ip_address(r["host"]).is_loopback for r in allowed)


async def test_the_client_refuses_a_metadata_address_without_connecting() -> None:
    client = WebhookClient(STRICT, timeout=5.0, connect_timeout=2.0)
    await client.start()
    try:
        outcome = await client.post("https://169.254.169.254/latest", b"{}", {})
    finally:
        await client.close()
    assert outcome.result == "refused"
    assert "169.254.169.254" in outcome.error

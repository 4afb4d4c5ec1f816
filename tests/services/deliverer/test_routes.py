"""Smarthost routes and source-address pools, end to end."""

from __future__ import annotations

from pathlib import Path

from shared.wire.records import EventKind
from testing.dnsserver import LOOPBACKS, DnsServer, mx_records
from testing.smtpsink import SmtpSink, free_port, server_tls_context
from tests.services.deliverer.harness import deliverer_section, delivery, running_deliverer


async def test_smarthost_route_for_all_mail_with_required_tls(tmp_path: Path) -> None:
    async with (
        DnsServer({}) as dns,  # no MX anywhere: the route must not need DNS
        SmtpSink(
            LOOPBACKS[2], tls_context=server_tls_context(), users={"relay-user": "s3cret"}
        ) as relay,
    ):
        secret = tmp_path / "relay.password"
        secret.write_text("s3cret\n")
        route = {
            "domains": ["*"],
            "host": f"{LOOPBACKS[2]}:{relay.port}",
            "tls": "required",
            "verify_certs": False,
            "username": "relay-user",
            "password_file": str(secret),
        }
        section = deliverer_section(dns, free_port(), routes=[route])
        async with running_deliverer(tmp_path, section) as d:
            await d.send(delivery("a@anywhere.test"), delivery("b@elsewhere.test"))
            delivered = await d.wait_events(EventKind.DELIVERED, 2)
            assert {e.mx for e in delivered} == {LOOPBACKS[2]}
            assert {e.tls for e in delivered} <= {"TLSv1.2", "TLSv1.3"}
            assert all(m.tls for m in relay.messages)
            assert relay.authenticated and set(relay.authenticated) == {"relay-user"}
            assert sorted(relay.recipients()) == ["a@anywhere.test", "b@elsewhere.test"]


async def test_source_address_pool(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
    ):
        section = deliverer_section(
            dns,
            port,
            source_pools={"bulk": ["127.0.0.9"]},
            domains={"dest.test": {"source_pool": "bulk"}},
        )
        async with running_deliverer(tmp_path, section) as d:
            await d.send(delivery("a@dest.test"))
            await d.wait_events(EventKind.DELIVERED, 1)
            assert sink.messages[0].peer[0] == "127.0.0.9"

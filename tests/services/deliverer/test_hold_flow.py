"""A paused sender's queued mail on a running deliverer (embedded bus, real DNS and SMTP): held
in the retry tiers without an attempt (not sent, not lost) while paused, delivered after the
resume; a paused sending domain holds only its own mail; held mail expires at its maximum
age like any deferral."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from shared.bus.base import Bus
from shared.wire.records import (
    EventKind,
    SendingDomain,
    Tenant,
    TenantState,
    TenantStatus,
    now,
)
from shared.wire.topics import TENANTS
from testing.dnsserver import LOOPBACKS, DnsServer, mx_records
from testing.smtpsink import SmtpSink
from tests.services.deliverer.harness import (
    Running,
    deliverer_section,
    delivery,
    running_deliverer,
)

PAUSED = TenantStatus(state=TenantState.PAUSED, by="reputation", why="bounce rate 12%")
MX = LOOPBACKS[0]


def tenants(paused: bool) -> list[Tenant]:
    """Tenant ``shop`` (paused or not) and tenant ``acme``, whose ``news.acme.test`` domain is
    paused or not while ``acme.test`` always sends."""
    status = PAUSED if paused else TenantStatus()
    return [
        Tenant(id="shop", status=status, domains=(SendingDomain(name="shop.test"),)),
        Tenant(
            id="acme",
            domains=(
                SendingDomain(name="acme.test"),
                SendingDomain(name="news.acme.test", status=status),
            ),
        ),
    ]


async def publish(bus: Bus, records: list[Tenant]) -> None:
    await bus.publish([TENANTS.out(tenant) for tenant in records])


def held(d: Running, reason: str) -> float:
    value = d.ctx.registry.get_sample_value("postline_deliverer_held_total", {"reason": reason})
    return value or 0.0


async def wait_held(d: Running, reason: str, count: float, timeout: float = 15.0) -> None:
    """Wait until ``count`` holds for ``reason`` were counted (each pass through a tier)."""
    deadline = time.monotonic() + timeout
    while held(d, reason) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{held(d, reason)} of {count} {reason} holds")
        await asyncio.sleep(0.02)


async def paused_tables(bus: Bus) -> None:
    await publish(bus, tenants(paused=True))


async def test_held_while_paused_and_sent_after_the_resume(tmp_path: Path) -> None:
    async with DnsServer(mx_records("dest.test", (10, MX))) as dns, SmtpSink(MX) as sink:
        section = deliverer_section(dns, sink.port, paused_hold="1s")
        async with running_deliverer(tmp_path, section, before=paused_tables) as d:
            await d.send(
                delivery("a@dest.test", tenant="shop", sender="app@shop.test"),
                delivery("b@dest.test", tenant="acme", sender="news@news.acme.test"),
                delivery("c@dest.test", tenant="acme", sender="app@acme.test"),
            )
            (sent,) = await d.wait_events(EventKind.DELIVERED, 1)
            # Each held Delivery comes back from its tier and is held again: twice each.
            await wait_held(d, "paused_tenant", 2)
            await wait_held(d, "paused_domain", 2)
            assert sink.recipients() == ["c@dest.test"]  # the active domain was not held
            assert sent.recipient == "c@dest.test"
            assert not d.of(EventKind.DEFERRED)  # a hold is not an attempt
            await publish(d.bus, tenants(paused=False))  # postline tenant resume
            delivered = await d.wait_events(EventKind.DELIVERED, 3)
            await d.settle()
    assert sorted(sink.recipients()) == ["a@dest.test", "b@dest.test", "c@dest.test"]
    assert {e.attempt for e in delivered} == {1}  # the holds counted no attempt
    assert {e.tenant for e in delivered} == {"shop", "acme"}


async def test_held_mail_expires_at_its_maximum_age(tmp_path: Path) -> None:
    async with DnsServer(mx_records("dest.test", (10, MX))) as dns, SmtpSink(MX) as sink:
        section = deliverer_section(dns, sink.port, paused_hold="1s")
        async with running_deliverer(tmp_path, section, before=paused_tables) as d:
            await d.send(
                delivery(
                    "a@dest.test",
                    tenant="shop",
                    sender="app@shop.test",
                    expires_at=now() + 1.5,
                )
            )
            (expired,) = await d.wait_events(EventKind.EXPIRED, 1)
            await d.settle()
    assert not sink.messages
    assert (expired.recipient, expired.tenant, expired.sender) == (
        "a@dest.test",
        "shop",
        "app@shop.test",
    )
    assert expired.headers.startswith(b"From: ")  # the bouncer's DSN to the sender needs it

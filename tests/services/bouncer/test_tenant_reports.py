"""Reports at a tenant's return-path host are the tenant's: real SMTP, the embedded bus.

A verified domain's mail has its VERP return path at ``bounces.D`` (or D's ``bounce_domain``),
used by no other tenant, so the host of an incoming DSN or ARF report names the tenant; the
token is unchanged and its HMAC still decides whether the report is ours. A complaint there
suppresses only that tenant's mail, a hard bounce everyone's; at the global bounce domain (and
at a host two tenants share) the tenant is unknown and a complaint stays global.
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Callable
from pathlib import Path

import msgspec

from shared import tenant_admin
from shared.suppressions import SuppressionTable
from shared.wire.records import (
    Event,
    EventKind,
    Record,
    SendingDomain,
    Suppression,
    SuppressionReason,
    Tenant,
)
from shared.wire.tokens import verp_address
from shared.wire.topics import EVENTS, SUPPRESSIONS
from tests.services.bouncer.conftest import BOUNCE_DOMAIN, SECRET, Running, wait_for_records

DATA = Path(__file__).resolve().parents[2] / "data" / "bounces"
MSGID = "0123456789abcdef0123456789abcdef"
DEADLINE = 10.0
ANNOYED = "annoyed@yahoo.com"  # the complainant of the golden ARF report
GONE = "nobody@customer.example"  # the failed recipient of the golden DSN
SHARED_HOST = "rp.shared.test"  # an explicit bounce_domain two tenants both gave


def send(port: int, rcpt: str, fixture: str) -> tuple[int, bytes]:
    """A golden report addressed to ``rcpt`` from the null sender; the DATA reply."""
    raw = (DATA / fixture).read_bytes().replace(b"b+token@bounces.postline.test", rcpt.encode())
    data = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("mx.remote.test")
        client.mail("<>")
        code, text = client.rcpt(rcpt)
        return (code, text) if code >= 400 else client.data(data)


def with_domain(name: str, bounce_domain: str = "") -> Callable[[Tenant], Tenant]:
    """A tenant change adding verified ``name`` (the bouncer needs no DKIM keys)."""
    domain = SendingDomain(name=name, verified=True, bounce_domain=bounce_domain)
    return lambda t: msgspec.structs.replace(t, domains=(*t.domains, domain))


async def add_tenants(running: Running) -> None:
    """``shop`` with ``shop.test`` (host ``bounces.shop.test``); ``shop`` and ``other`` both
    with a domain at ``SHARED_HOST``; then wait until the bouncer's live table has them."""
    bus = running.bus
    for tenant_id in ("shop", "other"):
        await tenant_admin.add(bus, tenant_id, by="test")
    await tenant_admin.update(bus, "shop", with_domain("shop.test"), by="test")
    await tenant_admin.update(bus, "shop", with_domain("a.test", SHARED_HOST), by="test")
    await tenant_admin.update(bus, "other", with_domain("b.test", SHARED_HOST), by="test")
    tenants = running.stage.tenants
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not all(tenants.by_domain(name) for name in ("shop.test", "a.test", "b.test")):
        assert loop.time() < end, "the bouncer did not pick up the tenants"
        await asyncio.sleep(0.05)


async def report(running: Running, host: str, recipient: str, fixture: str) -> tuple[Event, Record]:
    """Send ``fixture`` to a valid VERP address at ``host``; its event and suppression."""
    rcpt = verp_address("b", host, MSGID, recipient, SECRET)
    code, text = await asyncio.to_thread(send, running.smtp_port, rcpt, fixture)
    assert (code, text) == (250, b"2.0.0 Report accepted")
    kinds = (EventKind.BOUNCED, EventKind.COMPLAINED)

    def ours(records: list[Record]) -> list[Event]:
        return [r for r in records if isinstance(r, Event) and r.kind in kinds]

    events = await wait_for_records(running.bus, EVENTS, lambda rs: bool(ours(rs)), DEADLINE)
    (event,) = ours(events)
    (suppression,) = await wait_for_records(
        running.bus, SUPPRESSIONS, lambda rs: len(rs) >= 1, DEADLINE
    )
    return event, suppression


async def table_of(running: Running) -> SuppressionTable:
    table = SuppressionTable()
    await table.load(running.bus)
    return table


async def test_complaint_at_a_tenants_host_is_the_tenants(running: Running) -> None:
    await add_tenants(running)
    event, record = await report(running, "bounces.shop.test", ANNOYED, "arf_abuse_yahoo.eml")
    assert (event.kind, event.tenant, event.recipient) == (EventKind.COMPLAINED, "shop", ANNOYED)
    assert isinstance(record, Suppression)
    assert (record.reason, record.tenant, record.scope) == (SuppressionReason.COMPLAINT, "shop", "")
    table = await table_of(running)
    assert table.is_suppressed(ANNOYED, tenant="shop")
    assert not table.is_suppressed(ANNOYED, tenant="other")  # another business's mail goes
    assert not table.is_suppressed(ANNOYED)  # nor is the default tenant's suppressed


async def test_hard_bounce_at_a_tenants_host_names_it_and_stays_global(running: Running) -> None:
    await add_tenants(running)
    event, record = await report(running, "bounces.shop.test", GONE, "postfix_dsn_user_unknown.eml")
    assert (event.kind, event.tenant, event.classification) == (EventKind.BOUNCED, "shop", "hard")
    assert isinstance(record, Suppression)
    assert (record.reason, record.tenant) == (SuppressionReason.HARD_BOUNCE, "")
    table = await table_of(running)
    for tenant in ("shop", "other", ""):  # the mailbox is gone for every business
        assert table.is_suppressed(GONE, tenant=tenant)


async def test_complaint_at_the_global_bounce_domain_stays_global(running: Running) -> None:
    await add_tenants(running)
    event, record = await report(running, BOUNCE_DOMAIN, ANNOYED, "arf_abuse_yahoo.eml")
    assert (event.kind, event.tenant) == (EventKind.COMPLAINED, "")
    assert isinstance(record, Suppression)
    assert (record.reason, record.tenant) == (SuppressionReason.COMPLAINT, "")
    table = await table_of(running)
    for tenant in ("shop", "other", ""):
        assert table.is_suppressed(ANNOYED, tenant=tenant)


async def test_complaint_at_a_host_two_tenants_share_stays_global(running: Running) -> None:
    await add_tenants(running)
    event, record = await report(running, SHARED_HOST, ANNOYED, "arf_abuse_yahoo.eml")
    assert (event.kind, event.tenant) == (EventKind.COMPLAINED, "")
    assert isinstance(record, Suppression) and record.tenant == ""
    table = await table_of(running)
    for tenant in ("shop", "other"):  # either could have sent it: both stop
        assert table.is_suppressed(ANNOYED, tenant=tenant)

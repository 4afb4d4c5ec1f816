"""Ingest serving several businesses, over real SMTP on the embedded bus: a tenant's login,
its verified domains, its state and its limits, each changed live through the tenant topic."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable

import msgspec

from services.ingest.policy.base import PolicyState
from shared import tenant_access, tenant_admin
from shared.limits import LocalLimiter
from shared.wire.records import EventKind, SendingDomain, Tenant, TenantState
from shared.wire.topics import SUBMITTED
from tests.services.ingest.client import Raw
from tests.services.ingest.conftest import Running, StartIngest

TENANT = "acme"
LOGIN = "acme-app"
SECRET = "correct horse battery staple"
BY = "test"
#: A fixed clock for the limiter: quotas and rates then do not depend on when the test runs.
NOON = 1_780_000_000.0


def plain(user: str, password: str) -> str:
    return "AUTH PLAIN " + base64.b64encode(f"\0{user}\0{password}".encode()).decode()


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


def policy(ingest: Running) -> PolicyState:
    return ingest.stage.core.policy


async def change(ingest: Running, edit: Callable[[Tenant], Tenant]) -> Tenant:
    """Change the tenant on the bus and wait until the running ingest follows it."""
    after = await tenant_admin.update(ingest.bus, TENANT, edit, by=BY)
    await until(
        lambda: (policy(ingest).tenants.get(TENANT) or Tenant(id="")).revision == after.revision,
        "ingest did not follow the tenant change",
    )
    return after


def with_domain(verified: bool) -> Callable[[Tenant], Tenant]:
    def edit(tenant: Tenant) -> Tenant:
        return msgspec.structs.replace(
            tenant, domains=(SendingDomain(name="acme.test", verified=verified),)
        )

    return edit


async def tenant_ingest(start_ingest: StartIngest, **limits: object) -> Running:
    ingest = await start_ingest()
    await tenant_admin.add(ingest.bus, TENANT, name="Acme", by=BY)
    await change(ingest, with_domain(verified=True))
    await tenant_access.add_credential(ingest.bus, TENANT, LOGIN, password=SECRET, by=BY)
    if limits:
        await tenant_admin.set_fields(ingest.bus, TENANT, limits=limits, by=BY)
    await until(lambda: policy(ingest).tenants.by_credential(LOGIN) is not None, "no login")
    current = await tenant_admin.get(ingest.bus, TENANT)
    await until(
        lambda: (policy(ingest).tenants.get(TENANT) or Tenant(id="")).revision == current.revision,
        "ingest did not follow the limits",
    )
    ingest.stage.core.limiter = LocalLimiter(clock=lambda: NOON)
    return ingest


async def login(ingest: Running, user: str = LOGIN, password: str = SECRET) -> Raw:
    raw = await Raw.open(ingest.port("smtps"), tls=ingest.pki.client_context())
    assert (await raw.reply())[0] == 220
    assert (await raw.cmd("EHLO client.test"))[0] == 250
    assert (await raw.cmd(plain(user, password)))[0] == 235
    return raw


def message(sender: str = "app@acme.test") -> bytes:
    return f"From: {sender}\r\nTo: a@dest.test\r\nSubject: hi\r\n\r\nHello.\r\n.".encode()


async def send(raw: Raw, sender: str = "app@acme.test") -> tuple[int, str]:
    """One transaction; the first reply that is not a success."""
    for command in (f"MAIL FROM:<{sender}>", "RCPT TO:<a@dest.test>"):
        reply = await raw.cmd(command)
        if reply[0] != 250:
            return reply
    if (await raw.cmd("DATA"))[0] != 354:
        return (0, "DATA refused")
    return await raw.cmd(message(sender))


async def test_a_tenant_login_sends_only_from_its_verified_domains(
    start_ingest: StartIngest,
) -> None:
    ingest = await tenant_ingest(start_ingest)
    await change(ingest, with_domain(verified=False))
    raw = await login(ingest)
    code, text = await send(raw)
    assert (code, text) == (550, "5.7.1 Sender domain acme.test not allowed for you")
    assert (await raw.cmd("RSET"))[0] == 250
    await change(ingest, with_domain(verified=True))  # verified meanwhile: no reconnect
    assert (await send(raw))[0] == 250
    assert (await send(raw, "app@other.test"))[0] == 550  # not its domain
    await raw.close()
    [submission] = await ingest.records(SUBMITTED, 1)
    assert submission.tenant == TENANT
    accepted = [e for e in await ingest.events(1) if e.kind is EventKind.ACCEPTED]
    assert [e.tenant for e in accepted] == [TENANT]


async def test_a_paused_tenant_is_refused_with_the_reason_then_resumed(
    start_ingest: StartIngest,
) -> None:
    ingest = await tenant_ingest(start_ingest)
    await tenant_admin.set_state(ingest.bus, TENANT, TenantState.PAUSED, by=BY, why="billing")
    await until(
        lambda: policy(ingest).tenant(TENANT).status.state is TenantState.PAUSED, "not paused"
    )
    raw = await login(ingest)
    assert await send(raw) == (550, "5.7.1 sending paused for this account: billing")
    await tenant_admin.set_fields(ingest.bus, TENANT, settings={"paused_reply": "defer"}, by=BY)
    await until(lambda: policy(ingest).tenant(TENANT).settings.paused_reply == "defer", "no defer")
    assert await send(raw) == (451, "4.7.1 sending paused for this account: billing")
    await tenant_admin.set_state(ingest.bus, TENANT, TenantState.ACTIVE, by=BY)
    await until(
        lambda: policy(ingest).tenant(TENANT).status.state is TenantState.ACTIVE, "not resumed"
    )
    assert (await send(raw))[0] == 250
    await raw.close()
    rejected = [e for e in await ingest.events(3) if e.kind is EventKind.REJECTED]
    assert [(e.check, e.tenant) for e in rejected] == [("tenant_paused", TENANT)] * 2


async def test_a_paused_sending_domain_is_refused_in_mail_from_and_from_then_resumed(
    start_ingest: StartIngest,
) -> None:
    ingest = await tenant_ingest(start_ingest)
    await change(
        ingest,
        lambda t: msgspec.structs.replace(
            t, domains=(*t.domains, SendingDomain(name="news.acme.test", verified=True))
        ),
    )
    why = "hard bounce rate 14.0% over 24h (70 of 500)"
    await tenant_admin.set_domain_state(
        ingest.bus, TENANT, "news.acme.test", TenantState.PAUSED, by="reputation", why=why
    )
    await until(
        lambda: policy(ingest).paused_domain(TENANT, "news.acme.test") is not None, "not paused"
    )
    raw = await login(ingest)
    assert await send(raw, "app@news.acme.test") == (
        550,
        f"5.7.1 sending paused for domain news.acme.test: {why}",
    )
    assert (await raw.cmd("RSET"))[0] == 250
    assert (await send(raw))[0] == 250  # the tenant's other domain still sends
    # The From header names the paused domain while the envelope uses the active one.
    assert (await raw.cmd("MAIL FROM:<app@acme.test>"))[0] == 250
    assert (await raw.cmd("RCPT TO:<a@dest.test>"))[0] == 250
    assert (await raw.cmd("DATA"))[0] == 354
    assert await raw.cmd(message("app@news.acme.test")) == (
        550,
        f"5.7.1 sending paused for domain news.acme.test: {why}",
    )
    await tenant_admin.set_domain_state(
        ingest.bus, TENANT, "news.acme.test", TenantState.ACTIVE, by=BY
    )
    await until(lambda: policy(ingest).paused_domain(TENANT, "news.acme.test") is None, "paused")
    assert (await send(raw, "app@news.acme.test"))[0] == 250
    await raw.close()
    rejected = [e for e in await ingest.events(4) if e.kind is EventKind.REJECTED]
    assert [(e.check, e.tenant) for e in rejected] == [("domain_paused", TENANT)] * 2


async def test_over_the_rate_450_and_over_the_quota_452_name_the_limit(
    start_ingest: StartIngest,
) -> None:
    ingest = await tenant_ingest(start_ingest, per_second=0.001, burst=2, per_day=3)
    raw = await login(ingest)
    assert (await send(raw))[0] == 250
    assert (await send(raw))[0] == 250
    code, text = await send(raw)  # the burst of 2 is spent; one more per 1000 s
    assert (code, text.split(",")[0]) == (
        450,
        "4.7.1 Sending rate of this account exceeded (per_second)",
    )
    await tenant_admin.set_fields(ingest.bus, TENANT, limits={"per_second": 0}, by=BY)
    await until(lambda: policy(ingest).tenant(TENANT).limits.per_second == 0, "rate kept")
    assert (await send(raw))[0] == 250  # the third of the day
    code, text = await send(raw)
    # The fixed clock is 2026-05-28 20:26:40 UTC: the day's quota resets at midnight UTC.
    assert (code, text) == (
        452,
        "4.5.3 Quota of this account exhausted (per_day), resets at 2026-05-29T00:00:00Z",
    )
    await raw.close()


async def test_recipients_size_and_sessions_per_tenant(start_ingest: StartIngest) -> None:
    ingest = await tenant_ingest(
        start_ingest, recipients_per_message=2, message_size=200, sessions=1
    )
    raw = await login(ingest)
    assert (await raw.cmd("MAIL FROM:<app@acme.test>"))[0] == 250
    assert (await raw.cmd("RCPT TO:<a@dest.test>"))[0] == 250
    assert (await raw.cmd("RCPT TO:<b@dest.test>"))[0] == 250
    assert await raw.cmd("RCPT TO:<c@dest.test>") == (
        452,
        "4.5.3 Too many recipients for this account",
    )
    assert (await raw.cmd("DATA"))[0] == 354
    big = b"From: app@acme.test\r\nSubject: big\r\n\r\n" + b"x" * 300 + b"\r\n."
    assert await raw.cmd(big) == (552, "5.3.4 Message too big for this account")
    # One session at a time for this tenant (in this process): a second login waits.
    other = await Raw.open(ingest.port("smtps"), tls=ingest.pki.client_context())
    assert (await other.reply())[0] == 220
    assert (await other.cmd("EHLO client.test"))[0] == 250
    assert await other.cmd(plain(LOGIN, SECRET)) == (
        454,
        "4.7.0 Too many sessions for this account",
    )
    await raw.close()
    await until(lambda: not policy(ingest).sessions_per_tenant, "session not released")
    assert (await other.cmd(plain(LOGIN, SECRET)))[0] == 235
    await other.close()


async def test_a_trusted_relay_sends_as_the_tenant_owning_the_verified_domain(
    start_ingest: StartIngest,
) -> None:
    ingest = await tenant_ingest(start_ingest)
    await ingest.stop()
    relayed = await start_ingest(trusted_networks=["127.0.0.0/8"])
    await until(lambda: policy(relayed).tenants.get(TENANT) is not None, "no tenant")
    raw = await Raw.open(relayed.port("relay"))
    assert (await raw.reply())[0] == 220
    assert (await raw.cmd("EHLO client.test"))[0] == 250
    assert (await send(raw))[0] == 250
    assert (await send(raw, "app@nobody.test"))[0] == 250
    await raw.close()
    submissions = await relayed.records(SUBMITTED, 2)
    assert sorted(s.tenant for s in submissions) == ["acme", "default"]

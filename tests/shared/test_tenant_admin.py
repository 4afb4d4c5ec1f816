"""Tenant operations on a real embedded bus: each change, its audit event, each refusal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from shared import tenant_access, tenant_admin
from shared.bus.embedded import EmbeddedBus
from shared.config import EmbeddedConfig
from shared.credentials import verify_secret
from shared.errors import (
    TenantChangedMeanwhile,
    TenantConflict,
    TenantInvalid,
    TenantNotFound,
)
from shared.tenants import TenantTable
from shared.wire.records import Event, EventKind, SendingDomain, Tenant, TenantState
from shared.wire.topics import EVENTS, TENANTS
from testing.topics import read_all

BY = "cli:test"


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[EmbeddedBus]:
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db", partitions=2))
    await bus.start()
    yield bus
    await bus.close()


async def audit(bus: EmbeddedBus) -> list[Event]:
    events = [EVENTS.decode(m.value) for m in await read_all(bus, EVENTS.name) if m.value]
    return [e for e in events if e.kind is EventKind.TENANT_CHANGED]


async def test_add_is_idempotent_and_audited(bus: EmbeddedBus) -> None:
    tenant, created = await tenant_admin.add(bus, "shop", name="Shop", by=BY)
    assert created and tenant.revision == 1 and tenant.status.state is TenantState.ACTIVE
    again, created = await tenant_admin.add(bus, "shop", by=BY)
    assert not created and again == tenant
    with pytest.raises(TenantConflict, match="exists with name 'Shop'"):
        await tenant_admin.add(bus, "shop", name="Other", by=BY)
    [event] = await audit(bus)
    assert event.tenant == "shop" and event.by == BY and event.detail == "add"
    assert event.before == b"" and TENANTS.decode(event.after) == tenant


@pytest.mark.parametrize("bad", ["", "Shop", "-shop", "a" * 64, "shop_1", "default"])
async def test_bad_ids_are_refused(bus: EmbeddedBus, bad: str) -> None:
    with pytest.raises(TenantInvalid):
        await tenant_admin.add(bus, bad, by=BY)


async def test_unknown_tenant(bus: EmbeddedBus) -> None:
    with pytest.raises(TenantNotFound, match="no tenant 'ghost'"):
        await tenant_admin.get(bus, "ghost")
    with pytest.raises(TenantNotFound):
        await tenant_admin.set_state(bus, "ghost", TenantState.PAUSED, by=BY)
    with pytest.raises(TenantNotFound):
        await tenant_access.add_api_key(bus, "ghost", by=BY)
    assert (await tenant_admin.get(bus, "default")).id == "default"
    assert not await tenant_admin.remove(bus, "ghost", by=BY)
    assert await audit(bus) == []


async def test_set_limits_settings_and_pool(bus: EmbeddedBus) -> None:
    await tenant_admin.add(bus, "shop", by=BY)
    tenant = await tenant_admin.set_fields(
        bus,
        "shop",
        name="Shop Inc",
        ip_pool="warm-1",
        limits={"per_second": "2.5", "burst": "10", "message_size": "25MiB", "per_day": 1000},
        settings={"paused_reply": "defer"},
        by=BY,
    )
    assert tenant.revision == 2 and tenant.name == "Shop Inc" and tenant.ip_pool == "warm-1"
    assert tenant.limits.per_second == 2.5 and tenant.limits.burst == 10
    assert tenant.limits.message_size == 25 * 1024 * 1024 and tenant.limits.per_day == 1000
    assert tenant.settings.paused_reply == "defer"
    same = await tenant_admin.set_fields(bus, "shop", limits={"burst": 10}, by=BY)
    assert same == tenant  # no change, no event
    events = await audit(bus)
    assert len(events) == 2
    assert "limits.burst" not in events[1].detail and "per_second" in events[1].detail
    before, after = TENANTS.decode(events[1].before), TENANTS.decode(events[1].after)
    assert before.limits.per_second == 0 and after.limits.per_second == 2.5


@pytest.mark.parametrize(
    ("limits", "settings", "ip_pool", "message"),
    [
        ({"per_hour": "lots"}, None, None, r"limits\.per_hour: expected a whole number"),
        ({"per_hour": -1}, None, None, r"limits\.per_hour"),
        ({"message_size": "big"}, None, None, r"limits\.message_size: expected a size"),
        ({"per_week": 1}, None, None, r"limits\.per_week: no such limit"),
        (None, {"paused_reply": "bounce"}, None, r"settings\.paused_reply"),
        (None, {"scanning": "strict"}, None, r"settings\.scanning: expected one of off, tag"),
        (None, {"colour": "red"}, None, r"settings\.colour: no such setting"),
        (None, None, "Bad Pool", "ip_pool"),
    ],
)
async def test_malformed_values_name_the_field(
    bus: EmbeddedBus,
    limits: dict[str, object] | None,
    settings: dict[str, object] | None,
    ip_pool: str | None,
    message: str,
) -> None:
    await tenant_admin.add(bus, "shop", by=BY)
    with pytest.raises(TenantInvalid, match=message):
        await tenant_admin.set_fields(
            bus, "shop", limits=limits, settings=settings, ip_pool=ip_pool, by=BY
        )
    assert (await tenant_admin.get(bus, "shop")).revision == 1


async def test_pause_resume_disable(bus: EmbeddedBus) -> None:
    await tenant_admin.add(bus, "shop", by=BY)
    paused = await tenant_admin.set_state(bus, "shop", TenantState.PAUSED, by=BY, why="spam")
    assert paused.status.state is TenantState.PAUSED and paused.status.why == "spam"
    assert paused.status.by == BY
    again = await tenant_admin.set_state(bus, "shop", TenantState.PAUSED, by=BY, why="x")
    assert again == paused  # idempotent: no change, no event
    await tenant_admin.set_state(bus, "shop", TenantState.ACTIVE, by=BY)
    await tenant_admin.set_state(bus, "shop", TenantState.DISABLED, by=BY, why="closed")
    details = [e.detail for e in await audit(bus)]
    assert details == ["add", "pause: spam", "resume", "disable: closed"]


async def test_pause_and_resume_one_sending_domain(bus: EmbeddedBus) -> None:
    await tenant_admin.add(bus, "shop", by=BY)
    domains = (SendingDomain(name="shop.test"), SendingDomain(name="news.shop.test"))
    await tenant_admin.update(
        bus, "shop", lambda t: msgspec.structs.replace(t, domains=domains), by=BY
    )
    paused = await tenant_admin.set_domain_state(
        bus, "shop", "News.Shop.Test.", TenantState.PAUSED, by="reputation", why="bounces"
    )
    states = {d.name: (d.status.state, d.status.by, d.status.why) for d in paused.domains}
    assert states == {
        "shop.test": (TenantState.ACTIVE, "", ""),
        "news.shop.test": (TenantState.PAUSED, "reputation", "bounces"),
    }
    assert paused.status.state is TenantState.ACTIVE  # the tenant itself still sends
    again = await tenant_admin.set_domain_state(
        bus, "shop", "news.shop.test", TenantState.PAUSED, by=BY, why="other"
    )
    assert again == paused  # idempotent
    await tenant_admin.set_domain_state(bus, "shop", "news.shop.test", TenantState.ACTIVE, by=BY)
    with pytest.raises(TenantNotFound, match=r"no domain 'other\.test'"):
        await tenant_admin.set_domain_state(bus, "shop", "other.test", TenantState.PAUSED, by=BY)
    details = [e.detail for e in await audit(bus)][-2:]
    assert details == ["domain news.shop.test pause: bounces", "domain news.shop.test resume"]


async def test_a_staged_change_is_the_records_an_update_would_publish(bus: EmbeddedBus) -> None:
    before, _ = await tenant_admin.add(bus, "shop", by=BY)
    change = tenant_admin.state_change(TenantState.PAUSED, by="reputation", why="x", at=5.0)
    after, records = tenant_admin.staged_change(
        before, change, by="reputation", detail="pause: x", at=7.0
    )
    assert after.revision == before.revision + 1 and after.status.state is TenantState.PAUSED
    await bus.publish(records)
    assert await tenant_admin.get(bus, "shop") == after
    last = (await audit(bus))[-1]
    assert (last.by, last.detail, last.at) == ("reputation", "pause: x", 7.0)
    assert TENANTS.decode(last.after) == after
    unchanged, none = tenant_admin.staged_change(
        after, change, by="reputation", detail="pause: x", at=8.0
    )
    assert unchanged == after and none == []


async def test_remove_is_a_tombstone(bus: EmbeddedBus) -> None:
    await tenant_admin.add(bus, "shop", by=BY)
    assert await tenant_admin.remove(bus, "shop", by=BY)
    assert not await tenant_admin.remove(bus, "shop", by=BY)
    assert await tenant_admin.list_tenants(bus) == []
    last = (await audit(bus))[-1]
    assert last.detail == "remove" and last.after == b"" and last.before


async def test_credentials(bus: EmbeddedBus) -> None:
    await tenant_admin.add(bus, "shop", by=BY)
    await tenant_admin.add(bus, "other", by=BY)
    credential, password = await tenant_access.add_credential(bus, "shop", "app", by=BY)
    assert len(password) == 24 and verify_secret(password.encode(), credential.secret)
    with pytest.raises(TenantConflict, match="exists in tenant 'shop'"):
        await tenant_access.add_credential(bus, "shop", "app", by=BY)
    with pytest.raises(TenantConflict, match="belongs to tenant 'shop'"):
        await tenant_access.add_credential(bus, "other", "app", by=BY)
    with pytest.raises(TenantInvalid, match="password"):
        await tenant_access.add_credential(bus, "shop", "app2", password="short", by=BY)
    with pytest.raises(TenantInvalid, match="credential name"):
        await tenant_access.add_credential(bus, "shop", "has space", by=BY)
    with pytest.raises(TenantInvalid, match="not a sending domain"):
        await tenant_access.add_credential(bus, "shop", "app2", domains=("x.example",), by=BY)
    rotated, new_password = await tenant_access.rotate_credential(
        bus, "shop", "app", password="a long enough password", by=BY
    )
    assert new_password == "a long enough password"
    assert verify_secret(new_password.encode(), rotated.secret)
    assert not verify_secret(password.encode(), rotated.secret)
    with pytest.raises(TenantNotFound, match="no credential 'ghost'"):
        await tenant_access.rotate_credential(bus, "shop", "ghost", by=BY)
    table = TenantTable()
    await table.load(bus)
    assert await table.verify_credential("app", new_password.encode()) is not None
    assert await tenant_access.remove_credential(bus, "shop", "app", by=BY)
    assert not await tenant_access.remove_credential(bus, "shop", "app", by=BY)
    for event in await audit(bus):  # the audit trail never holds what verifies a login
        for raw in (event.before, event.after):
            if raw:
                assert all(c.secret == "" for c in TENANTS.decode(raw).credentials)


async def test_api_keys(bus: EmbeddedBus) -> None:
    await tenant_admin.add(bus, "shop", by=BY)
    record, key = await tenant_access.add_api_key(bus, "shop", name="ci", by=BY)
    assert key.startswith(record.id + "_") and len(key) == len("pl_") + 8 + 1 + 43
    table = TenantTable()
    await table.load(bus)
    found = table.by_api_key(key)
    assert found is not None and found[1].id == record.id and found[1].name == "ci"
    revoked = await tenant_access.revoke_api_key(bus, "shop", record.id, by=BY)
    assert revoked.revoked_at > 0
    assert await tenant_access.revoke_api_key(bus, "shop", record.id, by=BY) == revoked
    with pytest.raises(TenantNotFound, match="no API key 'pl_00000000'"):
        await tenant_access.revoke_api_key(bus, "shop", "pl_00000000", by=BY)
    await table.load(bus)
    assert table.by_api_key(key) is None
    view = tenant_admin.public_view(await tenant_admin.get(bus, "shop"))
    assert "hash" not in view["api_keys"][0] and view["api_keys"][0]["id"] == record.id


async def test_domain_owned_by_another_tenant_is_refused(bus: EmbeddedBus) -> None:
    await tenant_admin.add(bus, "shop", by=BY)
    await tenant_admin.add(bus, "other", by=BY)

    def with_domain(tenant: Tenant) -> Tenant:
        domains = (*tenant.domains, SendingDomain(name="shop.example"))
        return msgspec.structs.replace(tenant, domains=domains)

    await tenant_admin.update(bus, "shop", with_domain, by=BY, detail="domain add")
    with pytest.raises(TenantConflict, match=r"domain 'shop\.example' belongs to tenant 'shop'"):
        await tenant_admin.update(bus, "other", with_domain, by=BY, detail="domain add")


class RacingBus:
    """A real bus on which another admin's change lands right after our first read."""

    def __init__(self, bus: EmbeddedBus, other: EmbeddedBus) -> None:
        self._bus = bus
        self._other = other
        self.reads = 0

    async def read_table(self, topic: str) -> dict[bytes, bytes]:
        table = await self._bus.read_table(topic)
        self.reads += 1
        if self.reads == 1:
            await tenant_admin.set_fields(self._other, "shop", name="theirs", by="someone")
        return table

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bus, name)


async def test_a_change_meanwhile_is_refused(bus: EmbeddedBus, tmp_path: Path) -> None:
    await tenant_admin.add(bus, "shop", by=BY)
    other = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db", partitions=2))
    await other.start()
    try:
        racing = RacingBus(bus, other)
        with pytest.raises(TenantChangedMeanwhile, match="changed meanwhile"):
            await tenant_admin.update(
                racing,  # type: ignore[arg-type]
                "shop",
                lambda t: msgspec.structs.replace(t, name="mine"),
                by=BY,
            )
    finally:
        await other.close()
    assert (await tenant_admin.get(bus, "shop")).name == "theirs"
    assert [e.detail for e in await audit(bus)] == ["add", "set name"]

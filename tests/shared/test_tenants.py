"""The live tenant table: lookups, the implicit default, following changes on a real bus."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from shared import tenant_access, tenant_admin
from shared.bus.embedded import EmbeddedBus
from shared.bus.factory import open_bus
from shared.config import Config, CoreConfig, EmbeddedConfig, KafkaConfig, RuntimeConfig
from shared.credentials import hash_secret
from shared.tenants import TenantTable
from shared.wire.records import (
    DEFAULT_TENANT,
    ApiKey,
    Credential,
    SendingDomain,
    Tenant,
    TenantState,
)
from shared.wire.topics import TENANTS

DEADLINE = 10.0


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[EmbeddedBus]:
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db", partitions=2))
    await bus.start()
    yield bus
    await bus.close()


async def until(condition: object) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not condition():  # type: ignore[operator]
        assert loop.time() < end, "condition not met before the deadline"
        await asyncio.sleep(0.02)


def shop(**fields: object) -> Tenant:
    base = Tenant(
        id="shop",
        name="Shop",
        domains=(SendingDomain(name="shop.example"),),
        credentials=(Credential(name="shop-app", secret=hash_secret("pw", n=16), created_at=1),),
        revision=1,
    )
    return msgspec.structs.replace(base, **fields)


def test_default_tenant_needs_no_record() -> None:
    table = TenantTable()
    for tenant_id in (DEFAULT_TENANT, ""):
        tenant = table.get(tenant_id)
        assert tenant is not None and tenant.id == DEFAULT_TENANT
        assert tenant.status.state is TenantState.ACTIVE
        assert tenant.limits.per_second == 0
    assert table.get("shop") is None
    assert len(table) == 0


def test_indexes_follow_each_change() -> None:
    table = TenantTable()
    seen: list[tuple[str | None, str | None]] = []
    table.on_change(lambda b, a: seen.append((b and b.name, a and a.name)))
    table.apply(b"shop", TENANTS.encode(shop()))
    assert table.by_domain("SHOP.example.") == table.get("shop")
    found = table.by_credential("shop-app")
    assert found is not None and found[0].id == "shop"
    renamed = shop(name="Shop 2", domains=(SendingDomain(name="new.example"),), credentials=())
    table.apply(b"shop", TENANTS.encode(renamed))
    assert table.by_domain("shop.example") is None
    assert table.by_domain("new.example") == renamed
    assert table.by_credential("shop-app") is None
    table.apply(b"shop", TENANTS.encode(renamed))  # a replay changes nothing
    table.apply(b"shop", b"\xc1not msgpack")  # kept as it was
    assert table.get("shop") == renamed
    table.apply(b"shop", None)
    assert table.get("shop") is None and table.by_domain("new.example") is None
    assert seen == [(None, "Shop"), ("Shop", "Shop 2"), ("Shop 2", None)]


def test_an_entry_another_tenant_holds_stays_with_it() -> None:
    # Only two admins racing can make a duplicate; the first claim keeps it.
    table = TenantTable()
    table.apply(b"shop", TENANTS.encode(shop()))
    table.apply(b"copy", TENANTS.encode(shop(id="copy")))
    table.apply(b"copy", None)
    found = table.by_credential("shop-app")
    assert found is not None and found[0].id == "shop"
    assert table.by_domain("shop.example") is not None


def test_api_key_lookup() -> None:
    from shared.credentials import hash_api_key, new_api_key  # noqa: PLC0415

    key, key_id = new_api_key()
    other, other_id = new_api_key()
    table = TenantTable()
    table.apply(
        b"shop",
        TENANTS.encode(
            shop(
                api_keys=(
                    ApiKey(id=key_id, hash=hash_api_key(key), created_at=1),
                    ApiKey(id=other_id, hash=hash_api_key(other), created_at=1, revoked_at=2),
                )
            )
        ),
    )
    found = table.by_api_key(key)
    assert found is not None and found[0].id == "shop" and found[1].id == key_id
    assert table.by_api_key(key[:-1] + ("A" if key[-1] != "A" else "B")) is None  # wrong
    assert table.by_api_key(other) is None  # revoked
    assert table.by_api_key("pl_00000000_" + "x" * 43) is None  # unknown id
    assert table.by_api_key("not a key") is None


async def test_verify_credential() -> None:
    table = TenantTable()
    table.apply(b"shop", TENANTS.encode(shop()))
    found = await table.verify_credential("shop-app", b"pw")
    assert found is not None and found[1].name == "shop-app"
    assert await table.verify_credential("shop-app", b"wrong") is None
    assert await table.verify_credential("nobody", b"pw") is None


async def test_load_then_follow_a_change_from_another_client(
    bus: EmbeddedBus, tmp_path: Path
) -> None:
    await tenant_admin.add(bus, "shop", name="Shop", by="test")
    table = TenantTable()
    await table.load(bus)
    assert table.get("shop") is not None
    stopping = asyncio.Event()
    task = asyncio.create_task(table.follow(bus, stopping, logging.getLogger("test")))
    # A second process: a client of the same embedded file, as the CLI is.
    client = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db", partitions=2), lock=False)
    await client.start()
    try:
        _, password = await tenant_access.add_credential(client, "shop", "shop-app", by="test")
        await tenant_admin.set_state(client, "shop", TenantState.PAUSED, by="test", why="abuse")
    finally:
        await client.close()
    await until(lambda: (t := table.get("shop")) and t.status.state is TenantState.PAUSED)
    assert await table.verify_credential("shop-app", password.encode()) is not None
    stopping.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def kafka_config(bootstrap: str, prefix: str, instance: str) -> Config:
    core = CoreConfig(
        bus=msgspec.structs.replace(CoreConfig().bus, kind="kafka"),
        kafka=KafkaConfig(bootstrap=bootstrap, topic_prefix=prefix),
        runtime=RuntimeConfig(instance=instance),
    )
    return Config(core, "test", {})


@pytest.mark.kafka
async def test_follows_live_on_kafka(kafka_bootstrap: str, topic_prefix: str) -> None:
    reader = open_bus(kafka_config(kafka_bootstrap, topic_prefix, "tenants-reader"))
    writer = open_bus(kafka_config(kafka_bootstrap, topic_prefix, "tenants-writer"), owner=False)
    await reader.start()
    await writer.start()
    stopping = asyncio.Event()
    try:
        await reader.ensure_topics([TENANTS.name, "postline.events"])
        table = TenantTable()
        await table.load(reader)
        task = asyncio.create_task(table.follow(reader, stopping, logging.getLogger("test")))
        await tenant_admin.add(writer, "shop", name="Shop", by="test")
        await until(lambda: table.get("shop") is not None)
        await tenant_admin.set_fields(writer, "shop", limits={"per_hour": 100}, by="test")
        await until(lambda: (t := table.get("shop")) and t.limits.per_hour == 100)
        await tenant_admin.remove(writer, "shop", by="test")
        await until(lambda: table.get("shop") is None)
        stopping.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await writer.close()
        await reader.close()

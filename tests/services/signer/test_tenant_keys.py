"""Tenants' DKIM keys reach a running signer: a domain added at run time signs the next
message, verified with dkimpy against the keys served by a real DNS server on loopback."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest

from services.signer.main import create
from services.signer.tenantkeys import open_key, tenant_keys
from shared import tenant_admin
from shared.bus.embedded import EmbeddedBus
from shared.config import load_config
from shared.errors import SealError
from shared.sealing import KEK_BYTES, KeyRing, load_keyring
from shared.secretfile import ensure_secret_file
from shared.tenant_domains import DomainPolicy, add_domain, dns_records, remove_domain
from shared.wire.records import ClientInfo, Delivery, Submission, new_id
from shared.wire.topics import OUTBOUND, SUBMITTED
from testing.dnsserver import DnsServer
from testing.stage import stage_context
from tests.services.signer.conftest import SECRET, verify

DEADLINE = 20.0
#: 2026-12-15T00:00:00Z: the injected clock; selectors are named by its month.
NOW = 1_797_292_800.0


def message(domain: str) -> bytes:
    return (
        f"From: Shop <news@{domain}>\r\nTo: bob@one.test\r\nSubject: hi\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@{domain}>\r\n\r\nHello.\r\n"
    ).encode()


async def wait_for(predicate: object, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not predicate():  # type: ignore[operator]
        assert loop.time() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def deliveries(bus: EmbeddedBus, count: int) -> list[Delivery]:
    consumer = bus.consumer(f"check-{uuid.uuid4().hex}", [OUTBOUND.name])
    await consumer.start()
    found: list[Delivery] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    try:
        while len(found) < count:
            assert loop.time() < end, f"{len(found)} deliveries, wanted {count}"
            found += [OUTBOUND.decode(m.value) for m in await consumer.fetch(100, 0.1) if m.value]
    finally:
        await consumer.stop()
    return found


@pytest.mark.parametrize("workers", [1, 2])
async def test_domain_added_at_run_time_signs_the_next_message(
    tmp_path: Path, workers: int
) -> None:
    kek = tmp_path / "kek.key"
    ensure_secret_file(kek, KEK_BYTES)
    (tmp_path / "verp.key").write_bytes(SECRET)
    config_file = tmp_path / "postline.toml"
    config_file.write_text(
        f'[embedded]\npath = "{tmp_path / "bus.db"}"\npartitions = 2\n'
        f'[secrets]\nkek_file = "{kek}"\n'
        f'[signer]\nkeys_dir = "{tmp_path / "dkim"}"\nsecret_file = "{tmp_path / "verp.key"}"\n'
        f'bounce_domain = "bounces.relay.test"\nworkers = {workers}\n'
    )
    config = load_config(config_file, environ={})
    bus = EmbeddedBus(config.core.embedded)
    await bus.start()
    await tenant_admin.add(bus, "shop", by="test")
    ctx = stage_context("signer", config, bus)
    stage = await create(ctx)
    task = asyncio.create_task(stage.run(ctx))
    try:
        await asyncio.wait_for(ctx.wait_ready(), DEADLINE)
        assert stage.store.keys_of("shop.test") == ()
        domain = await add_domain(
            bus, load_keyring(config), "shop", "Shop.Test", now=NOW, by="test"
        )
        assert [k.selector for k in domain.dkim] == ["pl202612r", "pl202612e"]
        # The running signer follows postline.tenants: no restart, no reload signal.
        await wait_for(lambda: len(stage.store.keys_of("shop.test")) == 2, "tenant keys")
        sub = Submission(
            id=new_id(),
            received_at=NOW,
            client=ClientInfo(ip="127.0.0.1", auth_user="shop"),
            mail_from="news@shop.test",
            rcpt_to=("bob@one.test",),
            data=message("shop.test"),
        )
        await bus.publish([SUBMITTED.out(sub)])
        [delivery] = await deliveries(bus, 1)
        records = {
            r.name: [("TXT", f'"{r.value}"')]
            for r in dns_records(domain, DomainPolicy("bounces.relay.test"))
            if r.name.endswith("._domainkey.shop.test")
        }
        async with DnsServer(records) as dns:
            assert await verify(delivery.data, dns.port, 0)  # RSA-2048
            assert await verify(delivery.data, dns.port, 1)  # Ed25519
        assert b"s=pl202612r" in delivery.data and b"d=shop.test" in delivery.data
        # Removing the domain takes its keys out of the running signer too.
        await remove_domain(bus, "shop", "shop.test", by="test")
        await wait_for(lambda: stage.store.keys_of("shop.test") == (), "keys removed")
    finally:
        ctx.stopping.set()
        await asyncio.wait_for(task, DEADLINE)
        await bus.close()


async def test_moved_or_foreign_keys_are_refused(tmp_path: Path) -> None:
    kek_file = tmp_path / "kek.key"
    ensure_secret_file(kek_file, KEK_BYTES)
    config_file = tmp_path / "postline.toml"
    config_file.write_text(
        f'[embedded]\npath = "{tmp_path / "bus.db"}"\n[secrets]\nkek_file = "{kek_file}"\n'
    )
    config = load_config(config_file, environ={})
    keyring = load_keyring(config)
    bus = EmbeddedBus(config.core.embedded)
    await bus.start()
    try:
        await tenant_admin.add(bus, "shop", by="test")
        domain = await add_domain(bus, keyring, "shop", "shop.test", now=NOW, by="test")
        tenant = await tenant_admin.get(bus, "shop")
    finally:
        await bus.close()
    keys, problems = tenant_keys(tenant, keyring)
    assert (len(keys), problems) == (2, [])
    with pytest.raises(SealError):  # the same sealed bytes claimed for another domain
        open_key(keyring, "shop", "other.test", domain.dkim[0])
    with pytest.raises(SealError):  # or by another tenant
        open_key(keyring, "evil", "shop.test", domain.dkim[0])
    keys, problems = tenant_keys(tenant, KeyRing(os.urandom(KEK_BYTES)))
    assert keys == [] and len(problems) == 2 and "pl202612r._domainkey.shop.test" in problems[0]

"""A tenant's source pools through ``shared.cli.main`` on an embedded bus file: ``tenant set
--bulk-ip-pool`` and ``tenant domain pool`` (what the deliverer's source selection reads)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shared import cli
from shared.bus.embedded import EmbeddedBus
from shared.config import EmbeddedConfig
from shared.sealing import KEK_BYTES
from shared.secretfile import ensure_secret_file
from shared.tenants import TenantTable
from shared.wire.records import Tenant


@pytest.fixture
def config(tmp_path: Path) -> Path:
    kek = tmp_path / "kek.key"
    ensure_secret_file(kek, KEK_BYTES)
    path = tmp_path / "postline.toml"
    path.write_text(
        f'[embedded]\npath = "{tmp_path / "bus.db"}"\npartitions = 2\n'
        f'[secrets]\nkek_file = "{kek}"\n[signer]\nbounce_domain = "bounces.relay.test"\n'
    )
    return path


def run(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["--config", str(config), "tenant", *args])
    out, err = capsys.readouterr()
    return code, out + err


def tenant(config: Path, tenant_id: str) -> Tenant:
    async def load() -> Tenant:
        bus = EmbeddedBus(EmbeddedConfig(path=config.parent / "bus.db", partitions=2))
        await bus.start()
        try:
            table = TenantTable()
            await table.load(bus)
            found = table.get(tenant_id)
            assert found is not None
            return found
        finally:
            await bus.close()

    return asyncio.run(load())


def test_bulk_pool_and_a_domains_pool(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config, capsys, "add", "shop")[0] == 0
    for domain in ("shop.test", "news.shop.test"):
        code, out = run(config, capsys, "domain", "add", "shop", domain)
        assert code == 0, out
    code, out = run(config, capsys, "set", "shop", "--ip-pool", "warm", "--bulk-ip-pool", "bulk")
    assert (code, out) == (0, "tenant shop changed\n")
    code, out = run(config, capsys, "domain", "pool", "shop", "News.Shop.Test", "new-ips")
    assert (code, out) == (0, "domain news.shop.test of tenant shop sends from pool new-ips\n")
    found = tenant(config, "shop")
    assert (found.ip_pool, found.settings.bulk_ip_pool) == ("warm", "bulk")
    assert {d.name: d.ip_pool for d in found.domains} == {
        "shop.test": "",
        "news.shop.test": "new-ips",
    }
    code, out = run(config, capsys, "domain", "pool", "shop", "news.shop.test", "")
    assert code == 0 and out.endswith("sends from pool of the tenant\n")
    assert {d.ip_pool for d in tenant(config, "shop").domains} == {""}


def test_bad_pool_names_and_unknown_domains(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, capsys, "add", "shop")[0] == 0
    code, out = run(config, capsys, "set", "shop", "--bulk-ip-pool", "Bad_Pool")
    assert code == 1 and "ip_pool 'Bad_Pool': expected" in out
    code, out = run(config, capsys, "domain", "pool", "shop", "ghost.test", "warm")
    assert code == 1 and "no domain 'ghost.test'" in out

"""Source selection (pure logic on a tenant table and a ledger): which pool, smooth weighted
round robin, warm-up allowances, overflow, wait, cycles."""

from __future__ import annotations

from collections import Counter
from typing import Any

from services.deliverer.sources import OS_SOURCE, SourceSelector
from services.deliverer.warmup import WarmupLedger
from shared.pools import Pool, PoolAddress, PoolsConfig, WarmupConfig
from shared.reputation import DAY
from shared.tenants import TenantTable
from shared.wire.records import (
    Delivery,
    SendingDomain,
    Tenant,
    TenantSettings,
)
from shared.wire.topics import TENANTS

NOW = 20_000 * DAY + 3600.0
MIDNIGHT = 20_001 * DAY


def delivery(*, tenant: str = "acme", sender: str = "a@acme.test", **fields: Any) -> Delivery:
    values: dict[str, Any] = {
        "message_id": "m",
        "delivery_id": "d",
        "domain": "dest.test",
        "mail_from": "b@bounces.acme.test",
        "rcpt_to": ("x@dest.test",),
        "data": b"",
        "tenant": tenant,
        "sender": sender,
    }
    values.update(fields)
    return Delivery(**values)


def table(*tenants: Tenant) -> TenantTable:
    result = TenantTable()
    for tenant in tenants:
        result.apply(TENANTS.key(tenant), TENANTS.encode(tenant))
    return result


def pool(*addresses: tuple[str, int, bool], **fields: Any) -> Pool:
    return Pool(
        addresses=[
            PoolAddress(address=a, ehlo_name=f"out-{a.rsplit('.', 1)[-1]}.test", weight=w, warmup=m)
            for a, w, m in addresses
        ],
        **fields,
    )


def selector(
    pools: PoolsConfig, *tenants: Tenant, schedule: tuple[int, ...] = (2,)
) -> SourceSelector:
    return SourceSelector(pools, table(*tenants), WarmupLedger(WarmupConfig(schedule=schedule)))


def test_pool_assignment_order() -> None:
    pools = PoolsConfig(
        default="shared",
        bulk="bulk",
        pool={
            name: pool((f"192.0.2.{index}", 1, False))
            for index, name in enumerate(("shared", "bulk", "t", "tbulk", "d"), start=1)
        },
    )
    acme = Tenant(
        id="acme",
        ip_pool="t",
        settings=TenantSettings(bulk_ip_pool="tbulk"),
        domains=(SendingDomain(name="acme.test", ip_pool="d"), SendingDomain(name="b.test")),
    )
    plain = Tenant(id="plain")
    chosen = selector(pools, acme, plain)
    assert chosen.pool_of(delivery()) == "d"  # the sending domain's pool first
    assert chosen.pool_of(delivery(sender="x@b.test", bulk=True)) == "tbulk"
    assert chosen.pool_of(delivery(sender="x@b.test")) == "t"
    assert chosen.pool_of(delivery(tenant="plain", bulk=True)) == "bulk"  # [pools] bulk
    assert chosen.pool_of(delivery(tenant="plain")) == "shared"
    assert chosen.pool_of(delivery(tenant="gone")) == "shared"  # unknown tenant: default
    assert chosen.pool_of(delivery(is_dsn=True, sender="")) == "shared"  # DSNs: default


def test_unknown_pool_names_are_skipped_and_no_pool_is_the_os() -> None:
    pools = PoolsConfig(pool={"p": pool(("192.0.2.1", 1, False))})
    tenant = Tenant(id="acme", ip_pool="removed")
    chosen = selector(pools, tenant)
    assert chosen.pool_of(delivery()) == ""
    assert chosen.select(delivery(), "google", NOW).source is OS_SOURCE


def test_smooth_weighted_round_robin() -> None:
    pools = PoolsConfig(
        default="p",
        pool={"p": pool(("192.0.2.1", 5, False), ("192.0.2.2", 1, False), ("192.0.2.3", 1, False))},
    )
    chosen = selector(pools)
    picks = [chosen.select(delivery(), "google", NOW).source.address[-1] for _ in range(14)]
    # nginx's sequence for 5,1,1: spread out, not five in a row.
    assert "".join(picks) == "1121311" * 2
    assert Counter(picks) == {"1": 10, "2": 2, "3": 2}
    first = chosen.select(delivery(), "google", NOW).source
    assert (first.ehlo_name, first.pool) == ("out-1.test", "p")


def test_warming_address_stops_at_its_allowance_per_provider() -> None:
    pools = PoolsConfig(default="p", pool={"p": pool(("192.0.2.1", 1, True))})
    chosen = selector(pools, schedule=(3,))
    two = delivery(rcpt_to=("x@dest.test", "y@dest.test"))
    first = chosen.select(two, "google", NOW)
    assert first.source.address == "192.0.2.1" and first.reservation is not None
    assert first.reservation.count == 2
    second = chosen.select(two, "google", NOW)  # one left: takes the whole Delivery
    assert second.source.address == "192.0.2.1"
    waiting = chosen.select(delivery(), "google", NOW)
    assert (waiting.source, waiting.wait_until, waiting.pool) == (OS_SOURCE, MIDNIGHT, "p")
    assert chosen.select(delivery(), "yahoo", NOW).source.address == "192.0.2.1"
    assert chosen.select(delivery(), "google", MIDNIGHT).source.address == "192.0.2.1"


def test_warm_addresses_take_over_within_the_pool() -> None:
    pools = PoolsConfig(
        default="p", pool={"p": pool(("192.0.2.1", 1, True), ("192.0.2.2", 1, False))}
    )
    chosen = selector(pools, schedule=(1,))
    picks = [chosen.select(delivery(), "google", NOW) for _ in range(4)]
    assert [p.source.address for p in picks] == [
        "192.0.2.1",
        "192.0.2.2",
        "192.0.2.2",  # the warming one used its one for today
        "192.0.2.2",
    ]
    assert [p.reservation is not None for p in picks] == [True, False, False, False]


def test_overflow_to_another_pool() -> None:
    pools = PoolsConfig(
        default="new",
        pool={
            "new": pool(("192.0.2.1", 1, True), over_allowance="overflow", overflow="warm"),
            "warm": pool(("192.0.2.9", 1, False)),
        },
    )
    chosen = selector(pools, schedule=(1,))
    assert chosen.select(delivery(), "google", NOW).source.address == "192.0.2.1"
    over = chosen.select(delivery(), "google", NOW)
    assert (over.source.address, over.source.pool, over.pool, over.overflowed) == (
        "192.0.2.9",
        "warm",
        "new",
        True,
    )


def test_overflow_chain_follows_each_pools_policy() -> None:
    pools = PoolsConfig(
        default="a",
        pool={
            "a": pool(("192.0.2.1", 1, True), over_allowance="overflow", overflow="b"),
            "b": pool(("192.0.2.2", 1, True)),  # waits
        },
    )
    chosen = selector(pools, schedule=(1,))
    assert [chosen.select(delivery(), "google", NOW).source.address for _ in range(2)] == [
        "192.0.2.1",
        "192.0.2.2",
    ]
    assert chosen.select(delivery(), "google", NOW).wait_until == MIDNIGHT


def test_an_overflow_cycle_waits() -> None:
    pools = PoolsConfig(
        default="a",
        pool={
            "a": pool(("192.0.2.1", 1, True), over_allowance="overflow", overflow="b"),
            "b": pool(("192.0.2.2", 1, True), over_allowance="overflow", overflow="a"),
        },
    )
    chosen = selector(pools, schedule=(1,))
    for _ in range(2):
        assert chosen.select(delivery(), "google", NOW).source.address
    waiting = chosen.select(delivery(), "google", NOW)
    assert (waiting.wait_until, waiting.pool) == (MIDNIGHT, "a")

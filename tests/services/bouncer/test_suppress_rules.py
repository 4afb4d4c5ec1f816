"""The suppression rules pinned at their limits: which addresses, domains and tenants the
list accepts (RFC 5321/1035 lengths exactly at the bound), the soft-bounce window and
count at the edge, the scopes an entry gets, the CSV export's formula guard, and the admin
on a real (embedded) bus."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from services.bouncer.admin import AddRequest, _add_problem
from services.bouncer.suppress import (
    SoftBounceCounter,
    SuppressionAdmin,
    SuppressionPolicy,
    address_problem,
    decode_table,
    domain_problem,
    export_csv,
    parse_reason,
    tenant_problem,
)
from shared.bounceclass.rules import BounceClass
from shared.bus.embedded import EmbeddedBus
from shared.config import EmbeddedConfig
from shared.errors import BusUnavailable
from shared.wire.records import Suppression, SuppressionReason
from shared.wire.topics import SUPPRESSIONS

_LOCAL64 = "l" * 64
_LABEL63 = "d" * 63

# (address, the problem address_problem names, or None), written out, not derived.
ADDRESSES = [
    ("user@example.org", None),
    ("first.last+tag@mail.example.org", None),
    ("!#$%&'*+-/=?^_`{|}~@example.org", None),
    ('"quoted person"@example.org', None),
    ('"a\\"b"@example.org', None),
    ('"a\\\\b"@example.org', None),
    ('""@example.org', None),  # RFC 5321 Quoted-string: *QcontentSMTP, so empty is valid
    ('"\\"a"@example.org', None),
    ('"a\\""@example.org', None),
    ("jöran@exämple.org", None),
    ("\u0080@example.org", None),
    (f"{_LOCAL64}@example.org", None),
    ("", "address is empty"),
    ("user", "address must be local-part@domain"),
    ("@example.org", "address must be local-part@domain"),
    ("user@", "address must be local-part@domain"),
    ("a@b@example.org", "address must contain exactly one @"),
    ("a..b@example.org", "malformed local part (RFC 5321 4.1.2 dot-string)"),
    (".a@example.org", "malformed local part (RFC 5321 4.1.2 dot-string)"),
    ("a b@example.org", "malformed local part (RFC 5321 4.1.2 dot-string)"),
    ("a(b)@example.org", "malformed local part (RFC 5321 4.1.2 dot-string)"),
    ('"@example.org', "malformed quoted local part"),
    ('"abc@example.org', "malformed quoted local part"),
    ('"a"b"@example.org', "malformed quoted local part"),
    ('"a\\b"@example.org', "malformed quoted local part"),
    (f"{_LOCAL64}l@example.org", "local part longer than 64 octets (RFC 5321 4.5.3.1.1)"),
    ("a\r\nRCPT@example.org", "address contains a control character (CR, LF, NUL, ...)"),
    ("a\x00b@example.org", "address contains a control character (CR, LF, NUL, ...)"),
    ("a\x1fb@example.org", "address contains a control character (CR, LF, NUL, ...)"),
    ("a\x7fb@example.org", "address contains a control character (CR, LF, NUL, ...)"),
    ("user@[192.0.2.1]", "domain has a character not allowed in a host name"),
    ("user@example..org", "domain has an empty label"),
    ("user@-example.org", "domain label starts or ends with '-'"),
]


@pytest.mark.parametrize(("address", "problem"), ADDRESSES)
def test_address_problem_table(address: str, problem: str | None) -> None:
    assert address_problem(address) == problem


def test_a_space_and_a_tilde_are_not_control_characters() -> None:
    # 32 and 126 sit just inside the printable range that _has_control lets through.
    assert address_problem('"a b~"@example.org') is None


def test_address_length_is_254_octets_at_most() -> None:
    domain = ".".join(["d" * 60] * 4)  # 243 octets
    fits = "a" * (254 - len(domain) - 1) + "@" + domain
    assert len(fits.encode()) == 254
    assert address_problem(fits) is None
    assert address_problem("a" + fits) == "address longer than 254 octets (RFC 5321 4.5.3.1.3)"
    # Octets, not characters: a non-ASCII local part counts twice per character.
    wide = "é" * 6 + "@" + domain  # 12 + 1 + 243 = 256 octets, 250 characters
    assert address_problem(wide) == "address longer than 254 octets (RFC 5321 4.5.3.1.3)"


def test_local_part_length_counts_octets() -> None:
    assert address_problem("é" * 32 + "@example.org") is None  # 64 octets
    assert address_problem("é" * 32 + "a@example.org") == (
        "local part longer than 64 octets (RFC 5321 4.5.3.1.1)"
    )


DOMAINS = [
    ("example.org", None),
    ("a-b.example.org", None),
    ("exämple.org", None),
    ("a\u0080b.org", None),  # the first non-ASCII code point: RFC 6532 UTF8-2
    (f"{_LABEL63}.org", None),
    ("x", None),
    (f"{_LABEL63}d.org", "domain label longer than 63 octets"),
    ("é" * 32 + ".org", "domain label longer than 63 octets"),
    ("", "domain has an empty label"),
    ("example.org.", "domain has an empty label"),
    (".example.org", "domain has an empty label"),
    ("-a.org", "domain label starts or ends with '-'"),
    ("a-.org", "domain label starts or ends with '-'"),
    ("-", "domain label starts or ends with '-'"),
    ("a_b.org", "domain has a character not allowed in a host name"),
    ("a b.org", "domain has a character not allowed in a host name"),
    ("a\tb.org", "domain contains a control character"),
    ("a\x7f.org", "domain contains a control character"),
]


@pytest.mark.parametrize(("domain", "problem"), DOMAINS)
def test_domain_problem_table(domain: str, problem: str | None) -> None:
    assert domain_problem(domain) == problem


@pytest.mark.parametrize(
    ("tenant", "problem"),
    [
        ("", None),
        ("acme", None),
        ("acme-2", None),
        ("a" * 63, None),
        ("a" * 64, "tenant id: expected 1-63 characters of a-z, 0-9 and '-'"),
        ("Acme", "tenant id: expected 1-63 characters of a-z, 0-9 and '-'"),
        ("-acme", "tenant id: expected 1-63 characters of a-z, 0-9 and '-'"),
    ],
)
def test_tenant_problem(tenant: str, problem: str | None) -> None:
    assert tenant_problem(tenant) == problem


def test_admin_detail_is_at_most_1000_characters() -> None:
    fits = AddRequest(address="a@example.org", detail="x" * 1000)
    assert _add_problem(fits) is None
    long = AddRequest(address="a@example.org", detail="x" * 1001)
    assert _add_problem(long) == "detail longer than 1000 characters"


def test_soft_bounce_limit_is_reached_exactly_at_n() -> None:
    counter = SoftBounceCounter(limit=2, window=10.0)
    assert counter.add("a@example.org", 0.0) is False
    assert counter.add("A@Example.org", 1.0) is True  # same address, any case
    # Reaching the limit starts the count again.
    assert counter.add("a@example.org", 2.0) is False


def test_a_bounce_exactly_one_window_old_still_counts() -> None:
    counter = SoftBounceCounter(limit=2, window=10.0)
    assert counter.add("a@example.org", 0.0) is False
    assert counter.add("a@example.org", 10.0) is True
    counter = SoftBounceCounter(limit=2, window=10.0)
    assert counter.add("a@example.org", 0.0) is False
    assert counter.add("a@example.org", 10.5) is False


def test_memory_is_bounded_by_forgetting_the_oldest_address() -> None:
    counter = SoftBounceCounter(limit=2, window=100.0, max_addresses=2)
    counter.add("old@example.org", 0.0)
    counter.add("b@example.org", 1.0)
    counter.add("c@example.org", 2.0)  # third address: "old" is forgotten
    assert counter.add("old@example.org", 3.0) is False
    assert counter.add("c@example.org", 4.0) is True  # the others are still counted
    counter = SoftBounceCounter(limit=2, window=100.0, max_addresses=2)
    counter.add("old@example.org", 0.0)
    counter.add("b@example.org", 1.0)
    assert counter.add("old@example.org", 3.0) is True  # two addresses: nothing forgotten


def test_the_default_bound_is_a_million_addresses() -> None:
    counter = SoftBounceCounter(limit=2, window=100.0)
    counter.add("first@example.org", 0.0)
    for i in range(999_999):
        counter.add(f"k{i}", 0.0)
    assert counter.add("first@example.org", 1.0) is True  # 1 000 000 held: none forgotten
    counter.add("new1", 1.0)  # back to 1 000 000 ("first" left when it reached the limit)
    counter.add("new2", 1.0)  # 1 000 001: the oldest, "k0", is forgotten
    assert counter.add("k0", 2.0) is False
    assert counter.add("k2", 2.0) is True  # re-adding "k0" forgot "k1", not "k2"


@pytest.mark.parametrize("address", ["", "nobody", "nobody.example.org"])
def test_no_suppression_for_a_string_that_is_no_address(address: str) -> None:
    policy = SuppressionPolicy(soft_limit=1, soft_window=10.0)
    assert policy.decide(address, BounceClass.HARD, 1.0) is None
    assert policy.decide(address, BounceClass.COMPLAINT, 1.0) is None


def test_bounces_are_global_and_complaints_belong_to_the_tenant() -> None:
    policy = SuppressionPolicy(soft_limit=1, soft_window=10.0, source="dsn")
    hard = policy.decide("a@example.org", BounceClass.HARD, 5.0, tenant="acme")
    soft = policy.decide("b@example.org", BounceClass.SOFT, 5.0, tenant="acme")
    complaint = policy.decide("c@example.org", BounceClass.COMPLAINT, 5.0, tenant="acme")
    assert hard is not None and soft is not None and complaint is not None
    assert (hard.tenant, soft.tenant, complaint.tenant) == ("", "", "acme")
    assert soft.reason is SuppressionReason.SOFT_BOUNCES
    assert (hard.source, hard.at) == ("dsn", 5.0)


def test_the_entry_keeps_300_characters_of_detail() -> None:
    policy = SuppressionPolicy(soft_limit=1, soft_window=10.0)
    record = policy.decide("a@example.org", BounceClass.HARD, 1.0, "x" * 299 + "yz")
    assert record is not None and record.detail == "x" * 299 + "y"


def test_parse_reason() -> None:
    assert parse_reason("complaint") is SuppressionReason.COMPLAINT
    with pytest.raises(ValueError, match=r"unknown reason 'gone' \(one of hard_bounce, "):
        parse_reason("gone")


def test_export_prefixes_formula_cells_only() -> None:
    records = [
        Suppression(address="a@example.org", reason=SuppressionReason.MANUAL, at=1.0, detail=d)
        for d in ("=cmd|' /C calc'!A0", "+1", "-1", "@SUM(A1)", "plain = text")
    ]
    rows = export_csv(records).split("\r\n")[1:-1]
    details = [row.split(",")[5] for row in rows]
    assert details == ["'=cmd|' /C calc'!A0", "'+1", "'-1", "'@SUM(A1)", "plain = text"]


def test_decode_table_skips_what_it_cannot_read_and_sorts() -> None:
    b = Suppression(address="b@example.org", reason=SuppressionReason.MANUAL, at=1.0)
    a2 = Suppression(address="a@example.org", reason=SuppressionReason.MANUAL, at=1.0, tenant="t")
    a1 = Suppression(address="a@example.org", reason=SuppressionReason.MANUAL, at=1.0)
    table = {
        b"1": msgspec.msgpack.encode(b),
        b"2": b"\xc1 not msgpack",
        b"3": msgspec.msgpack.encode(a2),
        b"4": msgspec.msgpack.encode(a1),
    }
    assert decode_table(table) == [a1, a2, b]


async def test_admin_on_a_bus_it_owns(tmp_path: Path) -> None:
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "b.db", partitions=1))
    admin = SuppressionAdmin(bus, "cli", owns_bus=True)
    async with admin as entered:
        assert entered is admin
        added = await admin.add(" Gone@Example.org ", SuppressionReason.MANUAL, " Ex.ORG ", "x")
        assert (added.address, added.scope, added.source) == ("gone@example.org", "ex.org", "cli")
        await admin.add("other@example.org", SuppressionReason.MANUAL, tenant=" Acme ")
        found = await admin.lookup(" GONE@example.org")
        assert [(s.address, s.scope) for s in found] == [("gone@example.org", "ex.org")]
        assert [s.address for s in await admin.snapshot()] == [
            "gone@example.org",
            "other@example.org",
        ]
        assert (await admin.snapshot())[1].tenant == "acme"
        await admin.remove("gone@example.org", " ex.org ")
        assert await admin.lookup("gone@example.org") == []
    with pytest.raises(BusUnavailable, match="not running"):
        bus.check_running()  # the admin closed the bus it owns


async def test_admin_leaves_a_shared_bus_running(tmp_path: Path) -> None:
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "b.db", partitions=1))
    await bus.start()
    try:
        async with SuppressionAdmin(bus, "api") as admin:
            await admin.add("a@example.org", SuppressionReason.MANUAL)
        bus.check_running()  # still open: the caller owns it
        table = await bus.read_table(SUPPRESSIONS.name)
        assert [SUPPRESSIONS.decode(v).address for v in table.values()] == ["a@example.org"]
    finally:
        await bus.close()


async def test_admin_does_not_start_a_bus_it_does_not_own(tmp_path: Path) -> None:
    # It would not close it either: the caller that owns the bus starts and closes it.
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "b.db", partitions=1))
    async with SuppressionAdmin(bus, "api"):
        with pytest.raises(BusUnavailable, match="not running"):
            bus.check_running()

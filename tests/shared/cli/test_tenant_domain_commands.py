"""``postline tenant domain ...`` through the real CLI: records printed, DNS verified against
a real DNS server on loopback (includes walked, the RFC 7208 lookup limit), ownership."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from shared.bus.embedded import EmbeddedBus
from shared.cli import main
from shared.config import EmbeddedConfig
from shared.sealing import KEK_BYTES
from shared.secretfile import ensure_secret_file
from shared.wire.records import EventKind
from shared.wire.topics import EVENTS
from testing.dnsserver import DnsServer
from testing.topics import read_all


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    kek = tmp_path / "kek.key"
    ensure_secret_file(kek, KEK_BYTES)
    path = tmp_path / "postline.toml"
    path.write_text(
        f'[embedded]\npath = "{tmp_path / "bus.db"}"\n[secrets]\nkek_file = "{kek}"\n'
        '[signer]\nbounce_domain = "bounces.relay.test"\nspf_include = "_spf.relay.test"\n'
    )
    return path


async def run(config: Path, *argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    # main() runs its own event loop; the DNS server runs on this one.
    code = await asyncio.to_thread(main, ["--config", str(config), *argv])
    out, err = capsys.readouterr()
    return code, out + err


def audit_details(config: Path) -> list[str]:
    """The ``tenant_changed`` events' details, oldest first (from their own event loop)."""

    async def read() -> list[str]:
        bus = EmbeddedBus(EmbeddedConfig(path=config.parent / "bus.db"))
        await bus.start()
        try:
            events = [EVENTS.decode(m.value) for m in await read_all(bus, EVENTS.name) if m.value]
            return [e.detail for e in events if e.kind is EventKind.TENANT_CHANGED]
        finally:
            await bus.close()

    return asyncio.run(read())


def published(output: str) -> dict[str, list[tuple[str, str]]]:
    """The DKIM TXT records ``domain add`` printed, as the DNS server serves them."""
    records: dict[str, list[tuple[str, str]]] = {}
    for name, strings in re.findall(r"^(\S+_domainkey\S+)\. IN TXT (.+)$", output, re.M):
        records[name] = [("TXT", '"' + "".join(re.findall(r'"([^"]*)"', strings)) + '"')]
    return records


def spf_chain(depth: int) -> dict[str, list[tuple[str, str]]]:
    """bounces.shop.test -> include chain of ``depth`` hops ending in _spf.relay.test."""
    records = {
        "bounces.shop.test": [
            ("MX", "10 mx.relay.test."),
            ("TXT", '"v=spf1 include:hop0.test -all"'),
        ],
        "_spf.relay.test": [("TXT", '"v=spf1 ip4:192.0.2.0/24 -all"')],
        "_dmarc.shop.test": [("TXT", '"v=DMARC1; p=reject"')],
    }
    for hop in range(depth):
        target = f"hop{hop + 1}.test" if hop + 1 < depth else "_spf.relay.test"
        records[f"hop{hop}.test"] = [("TXT", f'"v=spf1 include:{target} -all"')]
    return records


async def test_add_prints_records_and_verify_checks_them(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (await run(config_file, "tenant", "add", "shop", capsys=capsys))[0] == 0
    async with DnsServer({}) as dns:
        ns = f"127.0.0.1:{dns.port}"
        code, out = await run(
            config_file,
            "tenant",
            "domain",
            "add",
            "shop",
            "SHOP.test",
            "--nameserver",
            ns,
            capsys=capsys,
        )
        assert code == 0, out
        assert "bounces.shop.test. IN CNAME bounces.relay.test." in out
        assert 'shop.test. IN TXT "v=spf1 include:_spf.relay.test ~all"' in out
        assert '_dmarc.shop.test. IN TXT "v=DMARC1; p=none' in out  # none published yet
        dkim = published(out)
        assert len(dkim) == 2 and all(re.match(r"pl\d{6}[re]\._domainkey", n) for n in dkim)
        for name, rrs in {**dkim, **spf_chain(3)}.items():
            dns.set(name, rrs)
        code, out = await run(
            config_file,
            "tenant",
            "domain",
            "verify",
            "shop",
            "shop.test",
            "--nameserver",
            ns,
            capsys=capsys,
        )
        assert code == 0, out
        assert "shop.test: verified" in out and "includes _spf.relay.test" in out
        code, out = await run(config_file, "tenant", "domain", "list", "shop", capsys=capsys)
        assert re.search(r"shop\.test\s+verified\s+selectors=pl\d{6}r,pl\d{6}e", out)

        # An SPF chain past the 10-lookup limit is a permerror: no longer verified.
        for name, rrs in spf_chain(11).items():
            dns.set(name, rrs)
        code, out = await run(
            config_file,
            "tenant",
            "domain",
            "verify",
            "shop",
            "shop.test",
            "--nameserver",
            ns,
            capsys=capsys,
        )
        assert code == 1 and "more than 10 DNS lookups" in out and "NOT verified" in out
        # A DKIM record that publishes another key fails too.
        first = next(iter(dkim))
        dns.set(first, [("TXT", '"v=DKIM1; k=rsa; p=AAAA"')])
        code, out = await run(
            config_file,
            "tenant",
            "domain",
            "verify",
            "shop",
            "shop.test",
            "--nameserver",
            ns,
            capsys=capsys,
        )
        assert code == 1 and "publishes another key" in out
        code, out = await run(config_file, "tenant", "domain", "list", "shop", capsys=capsys)
        assert "unverified" in out


async def test_another_tenants_domain_and_bad_names_refused(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for tenant in ("shop", "rival"):
        assert (await run(config_file, "tenant", "add", tenant, capsys=capsys))[0] == 0
    assert (await run(config_file, "tenant", "domain", "add", "shop", "shop.test", capsys=capsys))[
        0
    ] == 0
    # Adding it again is a retry: same keys, exit 0.
    assert (await run(config_file, "tenant", "domain", "add", "shop", "shop.test", capsys=capsys))[
        0
    ] == 0
    code, out = await run(
        config_file, "tenant", "domain", "add", "rival", "shop.test", capsys=capsys
    )
    assert code == 1 and "belongs to tenant 'shop'" in out
    code, out = await run(
        config_file, "tenant", "domain", "add", "rival", "bad_name.test", capsys=capsys
    )
    assert code == 1 and "bad_name" in out
    code, out = await run(
        config_file, "tenant", "domain", "remove", "shop", "shop.test", capsys=capsys
    )
    assert code == 0 and "removed" in out


async def test_pause_and_resume_one_domain(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (await run(config_file, "tenant", "add", "shop", capsys=capsys))[0] == 0
    for domain in ("shop.test", "news.shop.test"):
        code, out = await run(config_file, "tenant", "domain", "add", "shop", domain, capsys=capsys)
        assert code == 0, out
    code, out = await run(
        config_file,
        "tenant",
        "domain",
        "pause",
        "shop",
        "news.shop.test",
        "--why",
        "complaints",
        capsys=capsys,
    )
    assert (code, out.strip()) == (0, "domain news.shop.test of tenant shop paused")
    code, out = await run(config_file, "tenant", "domain", "list", "shop", capsys=capsys)
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert lines["news.shop.test"].endswith("paused (complaints)")
    assert lines["shop.test"].endswith("active")
    code, out = await run(
        config_file, "tenant", "domain", "resume", "shop", "news.shop.test", capsys=capsys
    )
    assert (code, out.strip()) == (0, "domain news.shop.test of tenant shop active")
    code, out = await run(
        config_file, "tenant", "domain", "resume", "shop", "ghost.test", capsys=capsys
    )
    assert code == 1 and "no domain 'ghost.test'" in out


async def test_one_domains_tracking(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (await run(config_file, "tenant", "add", "shop", capsys=capsys))[0] == 0
    for domain in ("shop.test", "news.shop.test"):
        code, out = await run(config_file, "tenant", "domain", "add", "shop", domain, capsys=capsys)
        assert code == 0, out
    code, out = await run(
        config_file, "tenant", "domain", "set", "shop", "News.Shop.Test", "--track-clicks",
        "off", "--track-opens", "on", "--tracking-host", "links.shop.test", capsys=capsys,
    )  # fmt: skip
    assert (code, out.strip()) == (
        0,
        "domain news.shop.test of tenant shop changed: tracking=opens:on,clicks:off "
        "tracking_host=links.shop.test",
    )
    code, out = await run(config_file, "tenant", "domain", "list", "shop", capsys=capsys)
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert lines["news.shop.test"].endswith(
        "active tracking=opens:on,clicks:off tracking_host=links.shop.test"
    )
    assert lines["shop.test"].endswith("active")  # the tenant's other domain: untouched
    code, out = await run(
        config_file, "tenant", "domain", "set", "shop", "news.shop.test", "--track-opens",
        "inherit", "--tracking-host", "", capsys=capsys,
    )  # fmt: skip
    assert out.strip() == "domain news.shop.test of tenant shop changed: tracking=clicks:off"
    code, out = await run(
        config_file, "tenant", "domain", "set", "shop", "news.shop.test", "--track-clicks",
        "off", capsys=capsys,
    )  # fmt: skip
    assert (code, out.strip()) == (
        0,
        "domain news.shop.test of tenant shop unchanged: tracking=clicks:off",
    )
    for argv, message in (
        (("ghost.test", "--track-opens", "on"), "no domain 'ghost.test'"),
        (("shop.test",), "nothing to set"),
        (
            ("shop.test", "--tracking-host", "x.test:443"),
            "domains.shop.test.tracking.host: 'x.test:443' is not a host name",
        ),
    ):
        code, out = await run(config_file, "tenant", "domain", "set", "shop", *argv, capsys=capsys)
        assert code == 1 and message in out and out.count("\n") == 1, out
    code, out = await run(config_file, "tenant", "show", "shop", capsys=capsys)
    domains = {d["name"]: d["tracking"] for d in json.loads(out)["domains"]}
    assert domains["news.shop.test"] == {
        "opens": None,
        "clicks": False,
        "text_clicks": None,
        "host": "",
    }
    assert domains["shop.test"] == {"opens": None, "clicks": None, "text_clicks": None, "host": ""}
    details = await asyncio.to_thread(audit_details, config_file)
    assert details[-2:] == [
        "domain news.shop.test set tracking.clicks, tracking.host, tracking.opens",
        "domain news.shop.test set tracking.host, tracking.opens",
    ]

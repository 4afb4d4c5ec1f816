"""``postline dkim keygen|check`` and ``postline domain check`` through the real CLI,
against records served by a DNS server on loopback."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from services.signer.keys import KeyStore, parse_key_file
from shared import cli
from testing.dnsserver import DnsServer
from tests.services.signer.conftest import DOMAIN, add_key, dns_records

BOUNCE = "bounces.example.test"


@pytest.fixture
def config_file(tmp_path: Path, keys_dir: Path) -> Path:
    path = tmp_path / "postline.toml"
    path.write_text(
        f'[signer]\nkeys_dir = "{keys_dir}"\nbounce_domain = "{BOUNCE}"\n'
        'spf_include = "_spf.relay.test"\nsending_ips = ["192.0.2.10"]\n'
    )
    return path


def good_records(store: KeyStore) -> dict[str, list[tuple[str, str]]]:
    return {
        **dns_records(store),
        DOMAIN: [("TXT", '"v=spf1 include:_spf.relay.test -all"'), ("MX", "10 mx.example.test.")],
        BOUNCE: [("TXT", '"v=spf1 ip4:192.0.2.0/24 -all"'), ("MX", "10 bouncer.relay.test.")],
        f"_dmarc.{DOMAIN}": [("TXT", '"v=DMARC1; p=reject; rua=mailto:d@example.test"')],
    }


async def run_cli(config_file: Path, *args: str) -> int:
    # The CLI runs its own event loop; the DNS server runs on this one.
    return await asyncio.to_thread(cli.main, ["--config", str(config_file), *args])


def test_keygen_writes_an_owner_only_key_and_prints_the_record(
    config_file: Path, keys_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        cli.main(
            [
                "--config",
                str(config_file),
                "dkim",
                "keygen",
                "--domain",
                "New.Test",
                "--selector",
                "s2026",
                "--algorithm",
                "rsa",
            ]
        )
        == 0
    )
    path = keys_dir / "s2026._domainkey.new.test.rsa.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    out = capsys.readouterr().out
    record_line = next(line for line in out.splitlines() if " IN TXT " in line)
    name, _, strings = record_line.partition(" IN TXT ")
    assert name == "s2026._domainkey.new.test."
    chunks = [c.strip('"') for c in strings.split('" "')]
    assert all(len(c) <= 255 for c in chunks)  # RFC 1035 character-strings
    assert "".join(chunks) == parse_key_file(path).txt_record()
    # A selector is never overwritten: rotation means a new selector.
    assert (
        cli.main(
            [
                "--config",
                str(config_file),
                "dkim",
                "keygen",
                "--domain",
                "new.test",
                "--selector",
                "s2026",
                "--algorithm",
                "rsa",
            ]
        )
        == 1
    )


def test_keygen_ed25519_and_refuses_small_rsa(
    config_file: Path, keys_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        cli.main(
            [
                "--config",
                str(config_file),
                "dkim",
                "keygen",
                "--domain",
                "new.test",
                "--selector",
                "ed",
                "--algorithm",
                "ed25519",
            ]
        )
        == 0
    )
    assert "k=ed25519; p=" in capsys.readouterr().out
    assert (
        cli.main(
            [
                "--config",
                str(config_file),
                "dkim",
                "keygen",
                "--domain",
                "new.test",
                "--selector",
                "weak",
                "--bits",
                "1024",
            ]
        )
        == 1
    )
    assert not (keys_dir / "weak._domainkey.new.test.rsa.pem").exists()


async def test_dkim_check_matches_published_keys(
    config_file: Path, store: KeyStore, capsys: pytest.CaptureFixture[str]
) -> None:
    async with DnsServer(dns_records(store)) as dns:
        code = await run_cli(
            config_file, "dkim", "check", DOMAIN, "--nameserver", f"127.0.0.1:{dns.port}"
        )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "dkim r1" in out and "dkim e1" in out and "FAIL" not in out


async def test_dkim_check_finds_wrong_and_missing_records(
    config_file: Path, store: KeyStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other_dir = tmp_path / "other"
    add_key(other_dir, DOMAIN, "r1", "rsa")
    other = KeyStore(other_dir)
    other.load()
    records = dns_records(other)  # r1 publishes another key; e1 is not published
    async with DnsServer(records) as dns:
        code = await run_cli(
            config_file, "dkim", "check", DOMAIN, "--nameserver", f"127.0.0.1:{dns.port}"
        )
    out = capsys.readouterr().out
    assert code == 1
    assert "publishes a different key" in out
    assert "no TXT record at e1._domainkey.example.test" in out


async def test_domain_check_good(
    config_file: Path, store: KeyStore, capsys: pytest.CaptureFixture[str]
) -> None:
    async with DnsServer(good_records(store)) as dns:
        code = await run_cli(
            config_file, "domain", "check", DOMAIN, "--nameserver", f"127.0.0.1:{dns.port}"
        )
    out = capsys.readouterr().out
    assert code == 0, out
    rows = {line.split("  ")[0].strip(): line for line in out.splitlines()[1:]}
    assert "includes _spf.relay.test" in rows["spf"]
    assert "authorises every sending address" in rows["spf bounce domain"]
    assert "p=reject" in rows["dmarc"]
    assert "aligned" in rows["dmarc spf alignment"]
    assert "10 bouncer.relay.test." in rows["bounce mx"]
    assert " ok " in rows["dkim r1"] and " ok " in rows["dkim e1"]


async def test_domain_check_broken(
    config_file: Path, store: KeyStore, capsys: pytest.CaptureFixture[str]
) -> None:
    records = good_records(store)
    records[DOMAIN] = [("TXT", '"v=spf1 include:_spf.other.test -all"')]
    records[BOUNCE] = [("TXT", '"v=spf1 -all"'), ("TXT", '"v=spf1 a -all"')]
    del records[f"_dmarc.{DOMAIN}"]
    del records["e1._domainkey.example.test"]
    async with DnsServer(records) as dns:
        code = await run_cli(
            config_file, "domain", "check", DOMAIN, "--nameserver", f"127.0.0.1:{dns.port}"
        )
    out = capsys.readouterr().out
    assert code == 1
    assert "does not authorise us; add include:_spf.relay.test" in out
    assert "2 SPF records at bounces.example.test (permerror)" in out
    assert "no TXT record at e1._domainkey.example.test" in out
    assert "no DMARC record at _dmarc.example.test" in out
    assert "no MX at bounces.example.test" in out


async def test_domain_check_reports_dns_failures_and_weak_policy(
    config_file: Path, store: KeyStore, capsys: pytest.CaptureFixture[str]
) -> None:
    records = good_records(store)
    records[f"_dmarc.{DOMAIN}"] = [("TXT", '"v=DMARC1; p=none; aspf=s"')]
    records[BOUNCE] = [("SERVFAIL", "")]
    async with DnsServer(records) as dns:
        code = await run_cli(
            config_file,
            "domain",
            "check",
            DOMAIN,
            "--nameserver",
            f"127.0.0.1:{dns.port}",
            "--timeout",
            "2",
        )
    out = capsys.readouterr().out
    assert code == 1
    assert "p=none: monitoring only" in out
    assert "not aligned: DMARC relies on DKIM alone (aspf=s)" in out
    assert "lookup failed" in out

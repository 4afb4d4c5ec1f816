"""``postline domain check``'s MTA-STS, DANE and TLS-RPT rows through the real CLI, against
the loopback DNS server and an HTTPS policy host with a test-CA certificate."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.signer.keys import KeyStore
from shared import cli
from testing.dnsserver import DnsServer
from testing.mtasts import PolicyHost, sts_records
from testing.pki import make_pki
from tests.services.signer.conftest import DOMAIN, dns_records

TLSA = "3 1 1 " + "ab" * 32
RPT = '"v=TLSRPTv1; rua=mailto:tlsrpt@example.test,https://reports.example.test/tlsrpt"'


@pytest.fixture
def config_file(tmp_path: Path, keys_dir: Path) -> Path:
    path = tmp_path / "postline.toml"
    path.write_text(f'[signer]\nkeys_dir = "{keys_dir}"\nbounce_domain = "{DOMAIN}"\n')
    return path


def records(store: KeyStore) -> dict[str, list[tuple[str, str]]]:
    return {
        **dns_records(store),
        DOMAIN: [
            ("MX", "10 mx1.example.test."),
            ("MX", "20 mx2.example.test."),
            ("TXT", '"v=spf1 -all"'),
        ],
        f"_dmarc.{DOMAIN}": [("TXT", '"v=DMARC1; p=reject"')],
        f"_25._tcp.mx1.{DOMAIN}": [("TLSA", TLSA)],
        f"_smtp._tls.{DOMAIN}": [("TXT", RPT)],
        **sts_records(DOMAIN, "2026a"),
    }


async def check(config_file: Path, dns: DnsServer, *extra: str) -> int:
    argv = ["--config", str(config_file), "domain", "check", DOMAIN]
    argv += ["--nameserver", f"127.0.0.1:{dns.port}", *extra]
    # The CLI runs its own event loop; the DNS server and the policy host run on this one.
    return await asyncio.to_thread(cli.main, argv)


def rows_of(out: str) -> dict[str, str]:
    return {line.split("  ")[0].strip(): line for line in out.splitlines()[1:]}


async def test_published_policies_are_shown(
    config_file: Path, store: KeyStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = make_pki(tmp_path / "sts", cn=f"mta-sts.{DOMAIN}")
    published = records(store)
    # Not an MTA-STS record at all (RFC 8461 3.1): discarded before counting, as the
    # deliverer does, so the one real record is still used.
    published[f"_mta-sts.{DOMAIN}"].append(("TXT", '"v=STSv10; id=other"'))
    async with DnsServer(published) as dns, PolicyHost(pki) as host:
        code = await check(
            config_file, dns, "--mta-sts-ca-file", str(pki.ca), "--mta-sts-port", str(host.port)
        )
    out = capsys.readouterr().out
    rows = rows_of(out)
    assert code == 0, out
    assert " ok " in rows["mta-sts txt"] and "id=2026a" in rows["mta-sts txt"]
    assert "mode enforce, max_age 86400, mx *.example.test" in rows["mta-sts policy"]
    assert "every MX host matches: mx1.example.test, mx2.example.test" in rows["mta-sts mx"]
    assert " warn " in rows["dane mx1.example.test"]
    assert "1 TLSA, AD=0" in rows["dane mx1.example.test"] and "3 1 1 abababab" in out
    assert "no TLSA records at _25._tcp.mx2.example.test" in rows["dane mx2.example.test"]
    assert "validating resolver" in rows["dane note"]
    assert (
        "reports to mailto:tlsrpt@example.test, https://reports.example.test/tlsrpt"
        in rows["tls-rpt"]
    )


async def test_broken_policies_fail_the_check(
    config_file: Path, store: KeyStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    published = records(store)
    published[DOMAIN].append(("MX", "30 mail.elsewhere.test."))
    published[f"_smtp._tls.{DOMAIN}"].append(("TXT", '"v=TLSRPTv1; rua=mailto:b@example.test"'))
    pki = make_pki(tmp_path / "sts", cn=f"mta-sts.{DOMAIN}")
    async with DnsServer(published) as dns, PolicyHost(pki) as host:
        args = ["--mta-sts-ca-file", str(pki.ca), "--mta-sts-port", str(host.port)]
        code = await check(config_file, dns, *args)
        first = capsys.readouterr().out
        host.respond("", status=302, headers={"Location": "https://elsewhere.test/"})
        second_code = await check(config_file, dns, *args)
        second = capsys.readouterr().out
        stranger = make_pki(tmp_path / "stranger")
        args = ["--mta-sts-ca-file", str(stranger.ca), "--mta-sts-port", str(host.port)]
        third_code = await check(config_file, dns, *args)
        third = capsys.readouterr().out
    assert code == 1 and second_code == 1 and third_code == 1
    rows = rows_of(first)
    assert " FAIL " in rows["mta-sts mx"] and "mail.elsewhere.test" in rows["mta-sts mx"]
    assert "2 v=TLSRPTv1 records" in rows["tls-rpt"] and " FAIL " in rows["tls-rpt"]
    assert "sts-policy-fetch-error" in rows_of(second)["mta-sts policy"]
    assert "redirects to https://elsewhere.test/" in second
    assert "sts-webpki-invalid" in rows_of(third)["mta-sts policy"]


async def test_nothing_published_is_no_problem(
    config_file: Path, store: KeyStore, capsys: pytest.CaptureFixture[str]
) -> None:
    published = {**dns_records(store), DOMAIN: [("MX", "10 mx1.example.test.")]}
    async with DnsServer(published) as dns:
        await check(config_file, dns)
    rows = rows_of(capsys.readouterr().out)
    assert "no v=STSv1 TXT record at _mta-sts.example.test" in rows["mta-sts"]
    assert " info " in rows["dane mx1.example.test"] and "dane note" not in rows
    assert "no v=TLSRPTv1 TXT record at _smtp._tls.example.test" in rows["tls-rpt"]
    assert not any(
        " FAIL " in row for name, row in rows.items() if name.startswith(("mta", "dane", "tls"))
    )

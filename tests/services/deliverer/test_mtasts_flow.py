"""MTA-STS end to end through the running deliverer: the loopback DNS server publishes the
domain's MX hosts, its ``_mta-sts`` record and the policy host, an HTTPS server with a
test-CA certificate serves the policy, and SMTP sinks with STARTTLS (or without) stand in
for the MX hosts. ``enforce`` never sends to a host outside the patterns or over a
connection it could not verify (and never in plaintext); ``testing`` delivers anyway and
reports what failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.wire.records import Event, EventKind
from testing.dnsserver import LOOPBACKS, DnsServer, mx_records
from testing.mtasts import PolicyHost, sts_records
from testing.pki import Pki, make_pki
from testing.smtpsink import SmtpSink, free_port
from tests.services.deliverer.harness import deliverer_section, delivery, running_deliverer

DOMAIN = "dest.test"


def policy(mode: str, *mx: str) -> str:
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {p}" for p in mx), "max_age: 86400"]
    return "\r\n".join(lines) + "\r\n"


def trusting(tmp_path: Path, *pkis: Pki) -> str:
    """One CA file trusting every one of ``pkis`` (policy host and MX hosts)."""
    path = tmp_path / "trusted.pem"
    path.write_bytes(b"".join(pki.ca.read_bytes() for pki in pkis))
    return str(path)


def section(dns: DnsServer, port: int, host: PolicyHost, ca_file: str) -> dict[str, Any]:
    return deliverer_section(
        dns, port, ca_file=ca_file, mta_sts={"https_port": host.port, "fetch_timeout": "10s"}
    )


def records() -> dict[str, list[tuple[str, str]]]:
    return {
        **mx_records(DOMAIN, (10, LOOPBACKS[0]), (20, LOOPBACKS[1])),
        **sts_records(DOMAIN, "2026"),
    }


def by_mx(events: list[Event]) -> dict[str, Event]:
    return {e.mx: e for e in events}


async def test_enforce_skips_a_host_outside_the_patterns_for_one_inside(tmp_path: Path) -> None:
    sts = make_pki(tmp_path / "sts", cn=f"mta-sts.{DOMAIN}")
    mx0 = make_pki(tmp_path / "mx0", cn=f"mx0.{DOMAIN}")
    mx1 = make_pki(tmp_path / "mx1", cn=f"mx1.{DOMAIN}")
    port = free_port(LOOPBACKS[:2])
    async with (
        DnsServer(records()) as dns,
        PolicyHost(sts, policy("enforce", f"mx1.{DOMAIN}")) as host,
        SmtpSink(LOOPBACKS[0], port, tls_context=mx0.server_context()) as outside,
        SmtpSink(LOOPBACKS[1], port, tls_context=mx1.server_context()) as inside,
    ):
        cfg = section(dns, port, host, trusting(tmp_path, sts, mx0, mx1))
        async with running_deliverer(tmp_path, cfg) as d:
            await d.send(delivery(f"a@{DOMAIN}"))
            [delivered] = await d.wait_events(EventKind.DELIVERED, 1)
            sessions = await d.wait_events(EventKind.TLS_SESSION, 2)
    assert outside.connections == 0 and not outside.messages  # never even connected to
    assert inside.recipients() == [f"a@{DOMAIN}"]
    assert delivered.mx == f"mx1.{DOMAIN}"
    assert (delivered.tls_security, delivered.tls_verified) == ("mta-sts", True)
    refused, passed = by_mx(sessions)[f"mx0.{DOMAIN}"], by_mx(sessions)[f"mx1.{DOMAIN}"]
    assert refused.tls_failure == "validation-failure"
    assert "does not match the MTA-STS policy's mx patterns" in refused.detail
    assert (refused.tls_policy_type, refused.tls_policy_domain) == ("sts", DOMAIN)
    assert refused.tls_mx_patterns == (f"mx1.{DOMAIN}",)
    assert "mode: enforce" in refused.tls_policy
    assert (passed.tls_failure, passed.tls_verified, passed.tls_security) == ("", True, "mta-sts")
    assert host.requests == 1


async def test_enforce_defers_when_no_host_passes_and_never_sends_in_plaintext(
    tmp_path: Path,
) -> None:
    sts = make_pki(tmp_path / "sts", cn=f"mta-sts.{DOMAIN}")
    wrong = make_pki(tmp_path / "wrong", cn="somewhere.else.test")
    port = free_port(LOOPBACKS[:2])
    async with (
        DnsServer(records()) as dns,
        PolicyHost(sts, policy("enforce", f"mx1.{DOMAIN}")) as host,
        SmtpSink(LOOPBACKS[0], port) as plaintext_outside,  # no STARTTLS, outside the patterns
        SmtpSink(LOOPBACKS[1], port, tls_context=wrong.server_context()) as bad_cert,
    ):
        cfg = section(dns, port, host, trusting(tmp_path, sts, wrong))
        async with running_deliverer(tmp_path, cfg) as d:
            await d.send(delivery(f"a@{DOMAIN}"))
            [deferred] = await d.wait_events(EventKind.DEFERRED, 1)
            sessions = await d.wait_events(EventKind.TLS_SESSION, 2)
            assert not d.of(EventKind.DELIVERED)
    assert not plaintext_outside.messages and plaintext_outside.connections == 0
    assert not bad_cert.messages
    assert deferred.reply is not None
    assert (deferred.reply.code, deferred.reply.enhanced) == (451, "4.7.5")
    assert deferred.reply.text == "TLS policy not met by any MX host"
    failures = by_mx(sessions)
    assert failures[f"mx0.{DOMAIN}"].tls_failure == "validation-failure"
    assert f"mx0.{DOMAIN} does not match" in failures[f"mx0.{DOMAIN}"].detail
    assert failures[f"mx1.{DOMAIN}"].tls_failure == "certificate-host-mismatch"
    assert {e.tls_security for e in sessions} == {"mta-sts"}
    assert {e.tls_policy_type for e in sessions} == {"sts"}


async def test_testing_delivers_despite_a_bad_certificate_and_reports_it(tmp_path: Path) -> None:
    sts = make_pki(tmp_path / "sts", cn=f"mta-sts.{DOMAIN}")
    wrong = make_pki(tmp_path / "wrong", cn="somewhere.else.test")
    port = free_port(LOOPBACKS[:1])
    published = {**mx_records(DOMAIN, (10, LOOPBACKS[0])), **sts_records(DOMAIN, "t1")}
    async with (
        DnsServer(published) as dns,
        PolicyHost(sts, policy("testing", f"*.{DOMAIN}")) as host,
        SmtpSink(LOOPBACKS[0], port, tls_context=wrong.server_context()) as sink,
    ):
        cfg = section(dns, port, host, trusting(tmp_path, sts, wrong))
        async with running_deliverer(tmp_path, cfg) as d:
            await d.send(delivery(f"a@{DOMAIN}"))
            [delivered] = await d.wait_events(EventKind.DELIVERED, 1)
            [session] = await d.wait_events(EventKind.TLS_SESSION, 1)
    assert sink.recipients() == [f"a@{DOMAIN}"]
    assert (delivered.tls_security, delivered.tls_verified) == ("mta-sts", False)
    assert delivered.tls  # still encrypted: unverified TLS before any cleartext
    assert session.tls_failure == "certificate-host-mismatch"
    assert (session.tls_policy_type, session.tls_security) == ("sts", "mta-sts")


async def test_testing_delivers_to_a_host_outside_the_patterns_and_reports_it(
    tmp_path: Path,
) -> None:
    sts = make_pki(tmp_path / "sts", cn=f"mta-sts.{DOMAIN}")
    mx0 = make_pki(tmp_path / "mx0", cn=f"mx0.{DOMAIN}")
    port = free_port(LOOPBACKS[:1])
    published = {**mx_records(DOMAIN, (10, LOOPBACKS[0])), **sts_records(DOMAIN, "t2")}
    async with (
        DnsServer(published) as dns,
        PolicyHost(sts, policy("testing", "mail.elsewhere.test")) as host,
        SmtpSink(LOOPBACKS[0], port, tls_context=mx0.server_context()) as sink,
    ):
        cfg = section(dns, port, host, trusting(tmp_path, sts, mx0))
        async with running_deliverer(tmp_path, cfg) as d:
            await d.send(delivery(f"a@{DOMAIN}"))
            [delivered] = await d.wait_events(EventKind.DELIVERED, 1)
            [session] = await d.wait_events(EventKind.TLS_SESSION, 1)
    assert sink.recipients() == [f"a@{DOMAIN}"]
    assert delivered.tls_security == "mta-sts"
    assert session.tls_failure == "validation-failure"
    assert session.tls_mx_patterns == ("mail.elsewhere.test",)


async def test_a_policy_that_cannot_be_fetched_leaves_the_configuration_in_charge(
    tmp_path: Path,
) -> None:
    stranger = make_pki(tmp_path / "stranger")  # the deliverer does not trust its CA
    sts = make_pki(tmp_path / "sts", cn=f"mta-sts.{DOMAIN}")
    port = free_port(LOOPBACKS[:1])
    published = {**mx_records(DOMAIN, (10, LOOPBACKS[0])), **sts_records(DOMAIN, "x")}
    async with (
        DnsServer(published) as dns,
        PolicyHost(sts, policy("enforce", "mail.elsewhere.test")) as host,
        SmtpSink(LOOPBACKS[0], port) as sink,
    ):
        cfg = section(dns, port, host, trusting(tmp_path, stranger))
        async with running_deliverer(tmp_path, cfg) as d:
            await d.send(delivery(f"a@{DOMAIN}"))
            [delivered] = await d.wait_events(EventKind.DELIVERED, 1)
            [session] = await d.wait_events(EventKind.TLS_SESSION, 1)
            assert d.stage.mta_sts is not None
            failure = d.stage.mta_sts.failures[DOMAIN]
    # RFC 8461 5.1: no valid policy (here: sts-webpki-invalid) means no MTA-STS.
    assert sink.recipients() == [f"a@{DOMAIN}"]
    assert delivered.tls_security == "none"
    assert failure.result_type == "sts-webpki-invalid"
    # ... and TLS-RPT still hears of it (RFC 8460 4.3.2.1), against the sts policy type.
    assert (session.tls_failure, session.tls_policy_type) == ("sts-webpki-invalid", "sts")
    assert session.tls_policy_domain == DOMAIN
    assert session.tls_security == "none"

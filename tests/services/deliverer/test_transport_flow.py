"""Transport security through the running deliverer (embedded bus, real DNS, real SMTP sinks
with certificates from a test CA): a host that fails its policy is skipped for the next one,
mail that no host can take securely is deferred and never sent in plaintext, and every
connection attempt becomes a ``tls_session`` event, the delivery events saying what the
mail went over."""

from __future__ import annotations

from pathlib import Path

from shared.wire.records import EventKind
from testing.dnsserver import LOOPBACKS, DnsServer, mx_records
from testing.pki import make_pki
from testing.smtpsink import SmtpSink, free_port
from tests.services.deliverer.harness import deliverer_section, delivery, running_deliverer

VERIFIED = {"dest.test": {"tls": "required", "verify_certs": True}}


async def test_a_host_failing_verification_is_skipped_for_one_that_passes(
    tmp_path: Path,
) -> None:
    good = make_pki(tmp_path / "good", cn="mx1.dest.test")
    wrong = make_pki(tmp_path / "wrong", cn="somewhere.else.test")
    port = free_port(LOOPBACKS[:2])
    records = mx_records("dest.test", (10, LOOPBACKS[0]), (20, LOOPBACKS[1]))
    # Both certificates come from CAs the deliverer trusts; only mx1's names its host.
    ca_file = tmp_path / "trusted.pem"
    ca_file.write_bytes(good.ca.read_bytes() + wrong.ca.read_bytes())
    async with (
        DnsServer(records) as dns,
        SmtpSink(LOOPBACKS[0], port, tls_context=wrong.server_context()) as first,
        SmtpSink(LOOPBACKS[1], port, tls_context=good.server_context()) as second,
    ):
        section = deliverer_section(dns, port, ca_file=str(ca_file), domains=VERIFIED)
        async with running_deliverer(tmp_path, section) as d:
            await d.send(delivery("a@dest.test"))
            [delivered] = await d.wait_events(EventKind.DELIVERED, 1)
            sessions = await d.wait_events(EventKind.TLS_SESSION, 2)
    assert not first.messages
    assert second.recipients() == ["a@dest.test"]
    assert delivered.mx == "mx1.dest.test"
    assert (delivered.tls_security, delivered.tls_verified) == ("required", True)
    assert delivered.tls_cipher
    by_mx = {e.mx: e for e in sessions}
    assert by_mx["mx0.dest.test"].tls_failure == "certificate-host-mismatch"
    assert by_mx["mx0.dest.test"].mx_address == LOOPBACKS[0]
    assert not by_mx["mx0.dest.test"].tls_verified
    assert by_mx["mx1.dest.test"].tls_failure == ""
    assert by_mx["mx1.dest.test"].tls_verified
    for event in sessions:
        assert event.domain == "dest.test"
        assert event.tls_policy_domain == "dest.test"
        assert event.tls_policy_type == "no-policy-found"
        assert event.tls_security == "required"


async def test_no_host_meeting_the_policy_defers_and_sends_nothing(tmp_path: Path) -> None:
    wrong = make_pki(tmp_path / "wrong", cn="somewhere.else.test")
    port = free_port(LOOPBACKS[:2])
    records = mx_records("dest.test", (10, LOOPBACKS[0]), (20, LOOPBACKS[1]))
    async with (
        DnsServer(records) as dns,
        SmtpSink(LOOPBACKS[0], port, tls_context=wrong.server_context()) as bad_cert,
        SmtpSink(LOOPBACKS[1], port) as no_tls,
    ):
        section = deliverer_section(dns, port, ca_file=str(wrong.ca), domains=VERIFIED)
        async with running_deliverer(tmp_path, section) as d:
            await d.send(delivery("a@dest.test"))
            [deferred] = await d.wait_events(EventKind.DEFERRED, 1)
            sessions = await d.wait_events(EventKind.TLS_SESSION, 2)
    assert not bad_cert.messages and not no_tls.messages
    assert deferred.reply is not None
    assert (deferred.reply.code, deferred.reply.enhanced) == (451, "4.7.5")
    assert deferred.reply.text == "TLS policy not met by any MX host"
    assert sorted(e.tls_failure for e in sessions[:2]) == [
        "certificate-host-mismatch",
        "starttls-not-supported",
    ]


async def test_opportunistic_sessions_are_reported_without_failure(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port)) as d,
    ):
        await d.send(delivery("a@dest.test"), delivery("b@dest.test"))
        delivered = await d.wait_events(EventKind.DELIVERED, 2)
        sessions = await d.wait_events(EventKind.TLS_SESSION, 1)
    assert len(sink.messages) == 2
    assert {(e.tls_security, e.tls_verified) for e in delivered} == {("none", False)}
    # One event per connection (two workers may have opened one each), none per message.
    assert len(sessions) == sink.connections
    assert {(e.tls_security, e.tls_failure, e.tls) for e in sessions} == {("none", "", "")}

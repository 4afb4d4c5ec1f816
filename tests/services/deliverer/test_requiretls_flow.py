"""Per-message TLS requirements through the running deliverer (embedded bus, real DNS, real
SMTP sinks with certificates from a test CA): "TLS required" never goes in plaintext nor
over a weaker session opened for another message, REQUIRETLS (RFC 8689) needs a next hop
that offers it and is returned with 5.7.30 otherwise, and ``TLS-Required: No`` makes a
published policy advisory (the connector with a policy source, as MTA-STS would give)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from services.deliverer.config import DelivererConfig, Policy
from services.deliverer.metrics import DelivererMetrics
from services.deliverer.mx import MxResolver
from services.deliverer.outcome import DeliveryFailure
from services.deliverer.pool import Connector
from services.deliverer.transport.policy import (
    HostPolicy,
    PolicyReport,
    ResultType,
    Security,
    TlsOutcome,
)
from shared.tlsrequire import TlsRequirement
from shared.wire.records import EventKind
from testing.dnsserver import LOOPBACKS, DnsServer, mx_records
from testing.pki import make_leaf, make_pki, server_context, tlsa
from testing.smtpsink import SmtpSink, free_port
from testing.unbound import validating
from tests.services.deliverer.harness import deliverer_section, delivery, running_deliverer

#: One connection to the destination at a time: a second message can only reuse it.
ONE_CONNECTION = {"dest.test": {"max_connections": 1}}


async def test_required_tls_to_a_host_without_starttls_is_deferred(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as no_tls,
        running_deliverer(tmp_path, deliverer_section(dns, port)) as d,
    ):
        await d.send(delivery("secret@dest.test", require_tls=True))
        [deferred] = await d.wait_events(EventKind.DEFERRED, 1)
        # The same destination takes other mail in plaintext: the requirement is the message's.
        await d.send(delivery("plain@dest.test"))
        [delivered] = await d.wait_events(EventKind.DELIVERED, 1)
    assert deferred.recipient == "secret@dest.test"
    assert deferred.reply is not None
    assert (deferred.reply.code, deferred.reply.enhanced) == (451, "4.7.5")
    assert no_tls.recipients() == ["plain@dest.test"]
    assert (delivered.tls_security, delivered.tls) == ("none", "")


async def test_required_tls_with_a_valid_certificate_is_delivered(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", cn="mx0.dest.test")
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port, tls_context=pki.server_context()) as sink,
    ):
        section = deliverer_section(dns, port, ca_file=str(pki.ca))
        async with running_deliverer(tmp_path, section) as d:
            await d.send(delivery("a@dest.test", require_tls=True))
            [delivered] = await d.wait_events(EventKind.DELIVERED, 1)
    assert sink.recipients() == ["a@dest.test"] and sink.messages[0].tls
    assert (delivered.tls_security, delivered.tls_verified) == ("required", True)


async def test_required_tls_never_reuses_an_unverified_session(tmp_path: Path) -> None:
    # The certificate names the host but comes from a CA the deliverer does not trust:
    # good enough for opportunistic TLS, not for a message that requires TLS.
    untrusted = make_pki(tmp_path / "untrusted", cn="mx0.dest.test")
    trusted = make_pki(tmp_path / "trusted", cn="elsewhere.test")
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port, tls_context=untrusted.server_context()) as sink,
    ):
        section = deliverer_section(dns, port, ca_file=str(trusted.ca), domains=ONE_CONNECTION)
        async with running_deliverer(tmp_path, section) as d:
            await d.send(delivery("first@dest.test"))
            [delivered] = await d.wait_events(EventKind.DELIVERED, 1)
            # The first message's session is idle and open; the next one must not use it.
            await d.send(delivery("secret@dest.test", require_tls=True))
            [deferred] = await d.wait_events(EventKind.DEFERRED, 1)
    assert (delivered.tls_security, delivered.tls_verified) == ("opportunistic", False)
    assert sink.recipients() == ["first@dest.test"]
    assert deferred.recipient == "secret@dest.test"
    assert deferred.reply is not None and deferred.reply.enhanced == "4.7.5"
    assert sink.connections == 2  # a fresh connection was tried for it


def smarthost(sink: SmtpSink) -> dict[str, object]:
    """A route to ``sink`` (ours, so its DNS is not in question), its certificate verified."""
    return {"domains": ["*"], "host": f"{sink.host}:{sink.port}", "verify_certs": True}


async def test_requiretls_to_a_host_not_offering_it_is_returned(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")  # names 127.0.0.1
    async with (
        DnsServer({}) as dns,
        SmtpSink(tls_context=pki.server_context()) as relay,
    ):
        section = deliverer_section(
            dns, free_port(), ca_file=str(pki.ca), routes=[smarthost(relay)]
        )
        async with running_deliverer(tmp_path, section) as d:
            await d.send(delivery("a@dest.test", requiretls=True, require_tls=True))
            [bounced] = await d.wait_events(EventKind.BOUNCED, 1)
    assert not relay.messages and relay.connections == 1
    assert bounced.reply is not None
    assert str(bounced.reply) == "550 5.7.30 REQUIRETLS support required"
    assert bounced.requiretls  # so the bouncer's DSN goes with REQUIRETLS (RFC 8689 4.3)


async def test_requiretls_goes_with_the_parameter_to_a_host_offering_it(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    async with (
        DnsServer({}) as dns,
        SmtpSink(tls_context=pki.server_context(), requiretls=True) as relay,
    ):
        section = deliverer_section(
            dns, free_port(), ca_file=str(pki.ca), routes=[smarthost(relay)]
        )
        async with running_deliverer(tmp_path, section) as d:
            await d.send(delivery("a@dest.test", requiretls=True, require_tls=True))
            await d.send(delivery("b@dest.test"))
            await d.wait_events(EventKind.DELIVERED, 2)
    by_rcpt = {m.rcpt_tos: m for m in relay.messages}
    assert by_rcpt[("a@dest.test",)].requiretls and by_rcpt[("a@dest.test",)].tls
    assert not by_rcpt[("b@dest.test",)].requiretls  # only the message that asked for it


async def test_requiretls_to_an_mx_from_unsigned_dns_is_returned(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", cn="mx0.dest.test")
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port, tls_context=pki.server_context(), requiretls=True) as mx,
    ):
        section = deliverer_section(dns, port, ca_file=str(pki.ca))
        async with running_deliverer(tmp_path, section) as d:
            await d.send(delivery("a@dest.test", requiretls=True, require_tls=True))
            [bounced] = await d.wait_events(EventKind.BOUNCED, 1)
    # RFC 8689 4.2.1: no DNSSEC and no MTA-STS policy vouch for the MX: not even tried.
    assert mx.connections == 0
    assert bounced.reply is not None
    assert (bounced.reply.code, bounced.reply.enhanced) == (550, "5.7.30")


class EnforcedSts:
    """A policy source with an ``enforce`` MTA-STS policy for every host (the MTA-STS
    source's answer, without its HTTPS fetch)."""

    async def host_policy(self, domain: str, host: str, secure_mx: bool) -> HostPolicy | None:
        report = PolicyReport(domain, "sts", ("version: STSv1", "mode: enforce"), (host,))
        return HostPolicy(Security.MTA_STS, require_tls=True, verify_webpki=True, report=report)


async def test_tls_required_no_makes_a_published_policy_advisory(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as no_tls,
    ):
        cfg = DelivererConfig(nameservers=[f"127.0.0.1:{dns.port}"], smtp_port=port)
        metrics = DelivererMetrics(CollectorRegistry())
        resolver = MxResolver(cfg.nameservers, metrics=metrics)
        connector = Connector(cfg, resolver, metrics, policy_sources=[EnforcedSts()])
        destination = await connector.destination("dest.test")
        try:
            await connector.open(destination, Policy())
        except DeliveryFailure as refused:
            assert refused.reply.enhanced == "4.7.5"  # the policy, enforced
        else:
            raise AssertionError("an enforced MTA-STS policy let a plaintext session through")
        outcomes: list[TlsOutcome] = []
        optional = TlsRequirement(tls_optional=True)
        session = await connector.open(destination, Policy(), outcomes=outcomes, need=optional)
        try:
            assert session.tls == "" and session.need == optional
            [outcome] = outcomes
            assert outcome.security is Security.MTA_STS  # reported against the policy
            assert outcome.failure is ResultType.STARTTLS_NOT_SUPPORTED
            assert await session.send(delivery("a@dest.test", tls_optional=True), 10)
        finally:
            await connector.close(session, destination.provider)
    assert no_tls.recipients() == ["a@dest.test"]


async def test_requiretls_over_dnssec_and_dane(tmp_path: Path, unbound_binary: str) -> None:
    """RFC 8689 4.2.1 with a real validating resolver: both MX hosts are secure (signed zone,
    AD from unbound) and DANE-verified; the one offering REQUIRETLS gets the message with
    the parameter, the one not offering it makes the message come back with 5.7.30."""
    offering, lacking = "127.0.0.2", "127.0.0.3"
    leaves = {name: make_leaf(None, [f"{name}.rt.test"]) for name in ("mx1", "mx2")}
    records = {
        "yes.rt.test": [("MX", "10 mx1.rt.test.")],
        "mx1.rt.test": [("A", offering)],
        "_25._tcp.mx1.rt.test": [("TLSA", tlsa(3, 1, 1, leaves["mx1"]))],
        "no.rt.test": [("MX", "10 mx2.rt.test.")],
        "mx2.rt.test": [("A", lacking)],
        "_25._tcp.mx2.rt.test": [("TLSA", tlsa(3, 1, 1, leaves["mx2"]))],
    }
    port = free_port((offering, lacking))
    async with (
        validating(records, ["rt.test"], tmp_path, binary=unbound_binary) as (_, unbound),
        SmtpSink(
            offering, port, tls_context=server_context(leaves["mx1"], []), requiretls=True
        ) as yes,
        SmtpSink(lacking, port, tls_context=server_context(leaves["mx2"], [])) as no,
    ):
        section = deliverer_section(
            unbound.dns, port, nameservers=[unbound.address], dane={"enabled": True}
        )
        async with running_deliverer(tmp_path, section) as d:
            await d.send(
                delivery("a@yes.rt.test", requiretls=True, require_tls=True),
                delivery("b@no.rt.test", requiretls=True, require_tls=True),
            )
            [delivered] = await d.wait_events(EventKind.DELIVERED, 1, timeout=20)
            [bounced] = await d.wait_events(EventKind.BOUNCED, 1, timeout=20)
    assert delivered.recipient == "a@yes.rt.test"
    assert (delivered.tls_security, delivered.tls_verified) == ("dane", True)
    assert [(m.rcpt_tos, m.requiretls) for m in yes.messages] == [(("a@yes.rt.test",), True)]
    assert bounced.recipient == "b@no.rt.test"
    assert str(bounced.reply) == "550 5.7.30 REQUIRETLS support required"
    assert not no.messages and no.connections == 1

"""DANE end to end (RFC 7672): the deliverer stage resolves through a real validating unbound
in front of the signed test zone and delivers to STARTTLS sinks presenting test-PKI chains.
A matching TLSA record delivers with ``tls_security=dane`` and a verified certificate; a
mismatch or a bogus TLSA answer defers, and nothing is ever sent in plaintext."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from shared.wire.records import Event, EventKind
from testing.pki import Issued, make_ca, make_leaf, server_context, tlsa
from testing.smtpsink import SmtpSink, free_port
from testing.unbound import validating
from tests.services.deliverer.harness import (
    Running,
    deliverer_section,
    delivery,
    running_deliverer,
)

GOOD, BAD, BOGUS, TA = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"


def _zone(
    leaves: dict[str, Issued], mid: Issued, stranger: Issued
) -> dict[str, list[tuple[str, str]]]:
    return {
        "good.dane.test": [("MX", "10 mx1.dane.test.")],
        "mx1.dane.test": [("A", GOOD)],
        "_25._tcp.mx1.dane.test": [("TLSA", tlsa(3, 1, 1, leaves["mx1"]))],
        "bad.dane.test": [("MX", "10 mx2.dane.test.")],
        "mx2.dane.test": [("A", BAD)],
        "_25._tcp.mx2.dane.test": [("TLSA", tlsa(3, 1, 1, stranger))],
        "bogus.dane.test": [("MX", "10 mx3.dane.test.")],
        "mx3.dane.test": [("A", BOGUS)],
        "_25._tcp.mx3.dane.test": [("TLSA", tlsa(3, 1, 1, leaves["mx3"])), ("BOGUS", "")],
        "ta.dane.test": [("MX", "10 mx4.dane.test.")],
        "mx4.dane.test": [("A", TA)],
        "_25._tcp.mx4.dane.test": [("TLSA", tlsa(2, 0, 1, mid))],
    }


async def _first_outcomes(d: Running, domains: int, timeout: float = 20) -> dict[str, Event]:
    """The first delivered or deferred event of each recipient domain (retries follow)."""
    deadline = time.monotonic() + timeout
    while True:
        first: dict[str, Event] = {}
        for event in d.events:
            if event.kind in (EventKind.DELIVERED, EventKind.DEFERRED):
                first.setdefault(event.recipient.rpartition("@")[2], event)
        if len(first) >= domains:
            return first
        if time.monotonic() > deadline:
            raise AssertionError(f"outcomes for {sorted(first)} only: {d.events}")
        await asyncio.sleep(0.02)


async def test_dane_delivers_matching_and_defers_mismatch_and_bogus(
    tmp_path: Path, unbound_binary: str
) -> None:
    root = make_ca("DANE Test Root")
    mid = make_ca("DANE Test Intermediate", issuer=root)
    leaves = {name: make_leaf(mid, [f"{name}.dane.test"]) for name in ("mx1", "mx2", "mx3", "mx4")}
    stranger = make_leaf(mid, ["mx2.dane.test"])  # right name, other key: must not match
    port = free_port((GOOD, BAD, BOGUS, TA))
    records = _zone(leaves, mid, stranger)
    async with (
        validating(records, ["dane.test"], tmp_path, binary=unbound_binary) as (_, unbound),
        SmtpSink(GOOD, port, tls_context=server_context(leaves["mx1"], [mid])) as good,
        SmtpSink(BAD, port, tls_context=server_context(leaves["mx2"], [mid])) as bad,
        SmtpSink(BOGUS, port, tls_context=server_context(leaves["mx3"], [mid])) as bogus,
        SmtpSink(TA, port, tls_context=server_context(leaves["mx4"], [mid, root])) as ta,
    ):
        section = deliverer_section(
            unbound.dns, port, nameservers=[unbound.address], dane={"enabled": True}
        )
        async with running_deliverer(tmp_path, section) as d:
            await d.send(
                delivery("a@good.dane.test"),
                delivery("b@bad.dane.test"),
                delivery("c@bogus.dane.test"),
                delivery("d@ta.dane.test"),
            )
            by_domain = await _first_outcomes(d, 4)

            # DANE-EE match, and DANE-TA through the presented intermediate.
            for domain in ("good.dane.test", "ta.dane.test"):
                event = by_domain[domain]
                assert event.kind is EventKind.DELIVERED, event
                assert (event.tls_security, event.tls_verified) == ("dane", True)
            assert [m.rcpt_tos for m in good.messages] == [("a@good.dane.test",)]
            assert [m.rcpt_tos for m in ta.messages] == [("d@ta.dane.test",)]

            # A mismatching TLSA record: deferred with 4.7.x, never in plaintext.
            mismatch = by_domain["bad.dane.test"]
            assert mismatch.kind is EventKind.DEFERRED
            assert mismatch.reply is not None and mismatch.reply.enhanced.startswith("4.7.")
            assert not bad.messages and not bad.dropped

            # A bogus TLSA answer: the host is not used at all.
            refused = by_domain["bogus.dane.test"]
            assert refused.kind is EventKind.DEFERRED
            assert not bogus.messages and not bogus.dropped and bogus.connections == 0

            sessions = {
                e.tls_policy_domain: (e.tls_security, e.tls_verified, e.tls_failure, e.mx_address)
                for e in d.of(EventKind.TLS_SESSION)
                if e.tls_policy_type == "tlsa"
            }
            assert sessions == {
                "good.dane.test": ("dane", True, "", GOOD),
                "bad.dane.test": ("dane", False, "validation-failure", BAD),
                "bogus.dane.test": ("dane", False, "dnssec-invalid", BOGUS),
                "ta.dane.test": ("dane", True, "", TA),
            }
            assert refused.reply is not None and refused.reply.enhanced.startswith("4.7.")


async def test_unusable_records_encrypt_and_dane_never_falls_back_to_plaintext(
    tmp_path: Path, unbound_binary: str
) -> None:
    """RFC 7672 2.2: TLSA records that cannot authenticate (PKIX-EE, unusable for SMTP)
    still make STARTTLS mandatory; a DANE host that offers no STARTTLS gets nothing."""
    leaf = make_leaf(None, ["mx5.dane.test"])
    records = {
        "pkix.dane.test": [("MX", "10 mx5.dane.test.")],
        "mx5.dane.test": [("A", GOOD)],
        "_25._tcp.mx5.dane.test": [("TLSA", tlsa(1, 1, 1, leaf))],
        "clear.dane.test": [("MX", "10 mx6.dane.test.")],
        "mx6.dane.test": [("A", BAD)],
        "_25._tcp.mx6.dane.test": [("TLSA", tlsa(3, 1, 1, leaf))],
    }
    port = free_port((GOOD, BAD))
    async with (
        validating(records, ["dane.test"], tmp_path, binary=unbound_binary) as (dns, unbound),
        SmtpSink(GOOD, port, tls_context=server_context(leaf)) as encrypted,
        SmtpSink(BAD, port) as cleartext,  # offers no STARTTLS
    ):
        section = deliverer_section(
            dns, port, nameservers=[unbound.address], dane={"enabled": True}
        )
        async with running_deliverer(tmp_path, section) as d:
            await d.send(delivery("a@pkix.dane.test"), delivery("b@clear.dane.test"))
            by_domain = await _first_outcomes(d, 2)
            sent = by_domain["pkix.dane.test"]
            assert sent.kind is EventKind.DELIVERED
            assert (sent.tls_security, sent.tls_verified) == ("dane", False)
            assert len(encrypted.messages) == 1
            held = by_domain["clear.dane.test"]
            assert held.kind is EventKind.DEFERRED
            assert held.reply is not None and held.reply.enhanced.startswith("4.7.")
            assert not cleartext.messages and not cleartext.dropped
            failures = {
                e.tls_policy_domain: e.tls_failure
                for e in d.of(EventKind.TLS_SESSION)
                if e.tls_policy_type == "tlsa"
            }
            assert failures == {"pkix.dane.test": "", "clear.dane.test": "starttls-not-supported"}

"""The deliverer's events carry the sender's DSN request (RFC 3461) to the bouncer, and the
header block exactly when a success or delay notice is due from Postline (real sinks)."""

from __future__ import annotations

from pathlib import Path

from shared.wire.records import EventKind, RecipientDsn
from testing.dnsserver import LOOPBACKS, DnsServer, mx_records
from testing.smtpsink import SmtpSink, free_port
from tests.services.deliverer.harness import BODY, deliverer_section, delivery, running_deliverer

HEADERS = BODY.partition(b"\r\n\r\n")[0] + b"\r\n"
ASKED = {
    "ok@dest.test": RecipientDsn(notify=("SUCCESS",), orcpt="rfc822;OK@dest.test"),
    "slow@dest.test": RecipientDsn(notify=("DELAY", "FAILURE")),
}


async def test_without_dsn_at_the_mx_the_events_call_for_notices(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port)) as d,
    ):
        sink.script_rcpt("slow@dest.test", "451 4.3.0 Try later", "451 4.3.0 Try later")
        recipients = ("ok@dest.test", "slow@dest.test", "plain@dest.test")
        await d.send(delivery(*recipients, dsn_ret="HDRS", dsn_envid="E1", dsn=ASKED))
        delivered = await d.wait_events(EventKind.DELIVERED, 2)
        first, _ = await d.wait_events(EventKind.DEFERRED, 2)
    by_rcpt = {e.recipient: e for e in delivered}
    ok, plain = by_rcpt["ok@dest.test"], by_rcpt["plain@dest.test"]
    assert (ok.dsn_notify, ok.dsn_orcpt, ok.dsn_ret, ok.dsn_envid) == (
        ("SUCCESS",),
        "rfc822;OK@dest.test",
        "HDRS",
        "E1",
    )
    assert ok.headers == HEADERS and not ok.dsn_passed  # the bouncer sends "relayed"
    assert plain.headers == b"" and plain.dsn_notify == ()
    assert (first.attempt, first.dsn_notify, first.headers) == (1, ("DELAY", "FAILURE"), HEADERS)
    later = [e for e in d.events if e.kind is EventKind.DEFERRED and e.attempt > 1]
    assert later and all(e.headers == b"" for e in later)  # one delay notice, not one a retry


async def test_an_mx_offering_dsn_takes_the_success_notice_over(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port, dsn=True) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port)) as d,
    ):
        await d.send(delivery("ok@dest.test", dsn=ASKED))
        (ok,) = await d.wait_events(EventKind.DELIVERED, 1)
    assert ok.dsn_passed and ok.headers == b""
    assert ("RCPT", "ok@dest.test", ("NOTIFY=SUCCESS", "ORCPT=rfc822;OK@dest.test")) in (
        sink.dsn_params
    )

"""The mail log of a running deliverer (embedded bus, real DNS, real SMTP sinks): one line per
recipient per attempt with the fields an operator greps for, a deferral saying its cause in
words and when the next attempt is due (the time the retry record itself carries)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from services.deliverer.maillog import utc
from shared.wire.records import EventKind
from shared.wire.topics import retry_topic
from testing.dnsserver import LOOPBACKS, DnsServer, mx_records
from testing.smtpsink import SmtpSink, free_port, server_tls_context
from tests.services.deliverer.harness import (
    BODY,
    deliverer_section,
    delivery,
    read_topic,
    running_deliverer,
)

MX = LOOPBACKS[0]


def lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "postline.maillog"]


async def wait_lines(
    caplog: pytest.LogCaptureFixture, count: int, timeout: float = 15.0
) -> list[logging.LogRecord]:
    """Wait (polling, with a deadline) until ``count`` mail log lines were written."""
    deadline = time.monotonic() + timeout
    while len(lines(caplog)) < count:
        if time.monotonic() > deadline:
            raise AssertionError([r.getMessage() for r in lines(caplog)])
        await asyncio.sleep(0.02)
    return lines(caplog)


def field(record: logging.LogRecord, name: str) -> Any:
    return vars(record)[name]


async def test_sent_and_bounced_lines_name_relay_tls_delays_and_reply(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="postline.maillog")
    port = free_port((MX,))
    async with (
        DnsServer(mx_records("dest.test", (10, MX))) as dns,
        SmtpSink(MX, port, tls_context=server_tls_context()) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port)) as d,
    ):
        sink.script_rcpt("gone@dest.test", "550 5.1.1 No such user")
        sent = delivery("ok@dest.test", "gone@dest.test", sender="alice@shop.test", tenant="shop")
        await d.send(sent)
        await d.wait_events(EventKind.BOUNCED, 1)
        by_rcpt = {field(r, "to"): r for r in await wait_lines(caplog, 2)}
    ok, gone = by_rcpt["ok@dest.test"], by_rcpt["gone@dest.test"]
    relay = f"mx0.dest.test[{MX}]:{port}"
    for record in (ok, gone):
        assert record.levelno == logging.INFO
        assert field(record, "message_id") == sent.message_id
        assert field(record, "delivery_id") == sent.delivery_id
        assert field(record, "tenant") == "shop"
        assert field(record, "from") == "alice@shop.test"
        assert field(record, "relay") == relay
        assert field(record, "attempt") == 1
        assert field(record, "size") == len(BODY)
        assert field(record, "lane") == "transactional"
        assert field(record, "tls") == "TLSv1.3"
        assert field(record, "cipher").startswith("TLS_")
        delays = field(record, "delays")
        assert set(delays) == {"queued", "dns", "connect", "transmit"}
        assert field(record, "delay") == pytest.approx(sum(delays.values()), abs=0.005)
        assert field(record, "next_attempt") == ""
    assert ok.getMessage() == field(ok, "status") == "sent"
    assert field(ok, "dsn") == "2.0.0"
    assert field(ok, "reply").startswith("250")
    assert gone.getMessage() == field(gone, "status") == "bounced"
    assert field(gone, "dsn") == "5.1.1"
    assert field(gone, "reply") == "550 5.1.1 No such user"
    assert field(gone, "reason") == f"host mx0.dest.test[{MX}] said: 550 5.1.1 No such user"
    text = vars(gone)["_text"]
    assert text.startswith(f"{sent.message_id}: to=<gone@dest.test>, relay={relay}, delay=")
    assert f"dsn=5.1.1, status=bounced (host mx0.dest.test[{MX}] said: 550 5.1.1" in text


async def test_deferred_line_says_the_dns_failure_and_the_next_attempt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="postline.maillog")
    async with (
        DnsServer({"flaky.test": [("SERVFAIL", "")]}) as dns,
        running_deliverer(tmp_path, deliverer_section(dns, free_port())) as d,
    ):
        await d.send(delivery("a@flaky.test", tenant="shop"))
        (event,) = await d.wait_events(EventKind.DEFERRED, 1)
        (retry,) = await read_topic(d.bus, retry_topic("1s"), 1)
        (line,) = await wait_lines(caplog, 1)
    assert line.getMessage() == field(line, "status") == "deferred"
    assert field(line, "dsn") == "4.4.3"
    assert field(line, "relay") == ""  # no connection was made
    assert field(line, "next_attempt") == utc(retry.not_before)
    assert retry.not_before > event.at  # the tier's wait, not the time of the attempt
    assert field(line, "reason") == (
        f"no DNS answer for flaky.test (MX): resolver 127.0.0.1 port {dns.port} answered "
        f"SERVFAIL; next attempt {utc(retry.not_before)}"
    )
    assert "status=deferred (no DNS answer for flaky.test (MX)" in vars(line)["_text"]


async def test_deferred_line_names_each_mx_that_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="postline.maillog")
    port = free_port(LOOPBACKS[:2])
    records = mx_records("dest.test", (10, LOOPBACKS[0]), (20, LOOPBACKS[1]))
    async with (
        DnsServer(records) as dns,  # no SMTP server listens on either MX
        running_deliverer(tmp_path, deliverer_section(dns, port)) as d,
    ):
        await d.send(delivery("a@dest.test"))
        await d.wait_events(EventKind.DEFERRED, 1)
        (line,) = await wait_lines(caplog, 1)
    assert field(line, "status") == "deferred"
    assert field(line, "dsn") == "4.4.1"
    assert field(line, "reason").startswith(
        f"no MX host answered: mx0.dest.test[{LOOPBACKS[0]}]:{port}: Connection refused; "
        f"mx1.dest.test[{LOOPBACKS[1]}]:{port}: Connection refused; next attempt "
    )


async def test_mail_log_off(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="postline.maillog")
    port = free_port((MX,))
    async with (
        DnsServer(mx_records("dest.test", (10, MX))) as dns,
        SmtpSink(MX, port),
        running_deliverer(tmp_path, deliverer_section(dns, port, mail_log=False)) as d,
    ):
        await d.send(delivery("ok@dest.test"))
        await d.wait_events(EventKind.DELIVERED, 1)
        await d.settle()
    assert lines(caplog) == []

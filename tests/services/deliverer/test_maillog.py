"""The mail log's lines from results (pure): the readable Postfix-style text, the JSON fields,
held and expired lines, and what each log format writes."""

from __future__ import annotations

import io
import json
import logging
import random

import pytest
from prometheus_client import CollectorRegistry

from services.deliverer.config import Retry
from services.deliverer.maillog import Delays, MailLogLine, Status, utc, write
from services.deliverer.metrics import DelivererMetrics
from services.deliverer.mx import MxResolver
from services.deliverer.outcome import DNS_TEMPORARY, Classified, DeliveryFailure, Outcome
from services.deliverer.queue import SHED_PAUSED, SHED_WINDOW_FULL, AttemptTiming, JobResult
from services.deliverer.report import records_for
from services.deliverer.retry import RetrySchedule
from shared.runtime.logs import JsonFormatter, TextFormatter
from shared.wire.records import Delivery, SmtpReply
from testing.smtpsink import free_port

AT = 1_790_000_000.0  # 2026-09-21T14:13:20Z: a fixed event time, never the clock

LINE = MailLogLine(
    status=Status.DEFERRED,
    message_id="3f9a2c1d",
    delivery_id="77aa",
    tenant="shop",
    sender="alice@shop.test",
    recipient="bob@dest.test",
    attempt=2,
    size=2048,
    lane="bulk",
    delays=Delays(queued=61.234, dns=0.004, connect=0.35, transmit=0.4),
    relay="mx1.dest.test[192.0.2.7]:25",
    source="198.51.100.5",
    reply=SmtpReply(code=451, enhanced="4.7.1", text="greylisted, try later"),
    tls="TLSv1.3",
    cipher="TLS_AES_256_GCM_SHA384",
    tls_security="mta-sts",
    tls_verified=True,
    next_attempt=AT,
)


def test_text_is_postfix_order_then_ours() -> None:
    assert LINE.text() == (
        "3f9a2c1d: to=<bob@dest.test>, relay=mx1.dest.test[192.0.2.7]:25, delay=61.99, "
        "delays=61.23/0/0.35/0.4, dsn=4.7.1, status=deferred (host mx1.dest.test[192.0.2.7] "
        "said: 451 4.7.1 greylisted, try later; next attempt 2026-09-21T14:13:20Z), "
        "from=<alice@shop.test>, tenant=shop, attempt=2, size=2048, lane=bulk, "
        "source=198.51.100.5, tls=TLSv1.3 TLS_AES_256_GCM_SHA384 (mta-sts, verified), "
        "delivery=77aa"
    )


def test_text_without_connection_or_tls() -> None:
    line = MailLogLine(
        status=Status.HELD,
        message_id="m1",
        delivery_id="d1",
        tenant="",
        sender="",
        recipient="x@dest.test",
        attempt=0,
        size=10,
        lane="transactional",
        cause="sender paused",
        next_attempt=AT,
    )
    assert line.text() == (
        "m1: to=<x@dest.test>, relay=none, delay=0, delays=0/0/0/0, dsn=-, status=held "
        "(sender paused; next attempt 2026-09-21T14:13:20Z), from=<>, tenant=-, attempt=0, "
        "size=10, lane=transactional, source=-, tls=none, delivery=d1"
    )


def test_the_text_format_writes_the_line_and_json_the_fields() -> None:
    logger = logging.getLogger("test.maillog.formats")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    out = {"text": io.StringIO(), "json": io.StringIO()}
    handlers = [logging.StreamHandler(out["text"]), logging.StreamHandler(out["json"])]
    handlers[0].setFormatter(TextFormatter())
    handlers[1].setFormatter(JsonFormatter())
    for handler in handlers:
        logger.addHandler(handler)
    try:
        write([LINE], logger)
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
    text = out["text"].getvalue().strip()
    assert text.endswith(" info    test.maillog.formats: " + LINE.text())
    fields = json.loads(out["json"].getvalue())
    assert "_text" not in fields
    assert fields["event"] == "deferred"
    assert fields["level"] == "info"
    assert (fields["tls_security"], fields["tls_verified"]) == ("mta-sts", True)
    assert {k: fields[k] for k in ("to", "from", "dsn", "status", "relay", "cipher")} == {
        "to": "bob@dest.test",
        "from": "alice@shop.test",
        "dsn": "4.7.1",
        "status": "deferred",
        "relay": "mx1.dest.test[192.0.2.7]:25",
        "cipher": "TLS_AES_256_GCM_SHA384",
    }
    assert fields["delay"] == 61.988
    assert fields["delays"] == {"queued": 61.234, "dns": 0.004, "connect": 0.35, "transmit": 0.4}
    assert fields["next_attempt"] == "2026-09-21T14:13:20Z"


def delivery(**fields: object) -> Delivery:
    values: dict[str, object] = {
        "message_id": "m1",
        "delivery_id": "d1",
        "domain": "dest.test",
        "mail_from": "b@bounce.test",
        "rcpt_to": ("a@dest.test", "b@dest.test"),
        "data": b"Subject: x\r\n\r\nhi\r\n",
        "sender": "alice@shop.test",
        "tenant": "shop",
        "submitted_at": AT - 100,
    }
    values.update(fields)
    return Delivery(**values)  # type: ignore[arg-type]


def schedule() -> RetrySchedule:
    return RetrySchedule(Retry(tiers=["1m", "5m"], jitter=0.0), rng=random.Random(1))


def metrics() -> DelivererMetrics:
    return DelivererMetrics(CollectorRegistry())


def logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "postline.maillog"]


def test_attempt_lines_delays_add_up_to_the_time_since_submission(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="postline.maillog")
    failure = Classified(Outcome.DEFERRED, DNS_TEMPORARY)
    result = JobResult(
        dict.fromkeys(("a@dest.test", "b@dest.test"), failure),
        cause="no DNS answer for dest.test (MX): resolver 10.0.0.2 unreachable",
        timing=AttemptTiming(dns=2.0),
    )
    records_for(delivery(), result, AT, schedule(), metrics(), mail_log=True)
    lines = logged(caplog)
    assert [vars(r)["to"] for r in lines] == ["a@dest.test", "b@dest.test"]
    line = vars(lines[0])
    assert line["delay"] == 100.0
    assert line["delays"] == {"queued": 98.0, "dns": 2.0, "connect": 0.0, "transmit": 0.0}
    assert line["attempt"] == 1
    assert line["reason"] == (
        "no DNS answer for dest.test (MX): resolver 10.0.0.2 unreachable; "
        f"next attempt {utc(AT + 60)}"
    )


def test_held_line_for_a_paused_sender_and_none_for_a_full_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="postline.maillog")
    held = JobResult(shed=SHED_PAUSED, not_before=AT + 300)
    records_for(delivery(), held, AT, schedule(), metrics(), mail_log=True)
    busy = JobResult(shed=SHED_WINDOW_FULL)
    records_for(delivery(), busy, AT, schedule(), metrics(), mail_log=True)
    lines = [vars(r) for r in logged(caplog)]
    assert [(line["status"], line["to"]) for line in lines] == [
        ("held", "a@dest.test"),
        ("held", "b@dest.test"),
    ]
    assert lines[0]["attempt"] == 0  # no attempt was made
    assert lines[0]["reason"] == (
        "sender paused: tenant shop or its sending domain is paused or disabled; "
        f"next attempt {utc(AT + 300)}"
    )


def test_expired_line_says_how_long_and_the_last_reply(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="postline.maillog")
    last = SmtpReply(code=451, enhanced="4.4.1", text="no MX host answered")
    old = delivery(
        submitted_at=AT - 5 * 86400 - 7200, expires_at=AT - 1, attempt=9, last_reply=last
    )
    held = JobResult(shed=SHED_PAUSED, not_before=AT)
    records_for(old, held, AT, schedule(), metrics(), mail_log=True)
    line = vars(logged(caplog)[0])
    assert line["status"] == "expired"
    assert line["dsn"] == "4.4.1"
    assert (
        line["reason"]
        == "gave up after 5d 2h in the queue; last reply: 451 4.4.1 no MX host answered"
    )


def test_mail_log_off_writes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="postline.maillog")
    sent = JobResult({"a@dest.test": Classified(Outcome.DELIVERED, SmtpReply(code=250))})
    records_for(delivery(rcpt_to=("a@dest.test",)), sent, AT, schedule(), metrics())
    assert logged(caplog) == []


async def test_a_silent_resolver_is_named_in_the_failure() -> None:
    port = free_port()  # nothing answers there
    resolver = MxResolver([f"127.0.0.1:{port}"], timeout=0.5)
    with pytest.raises(DeliveryFailure) as failed:
        await resolver.resolve("quiet.test")
    assert failed.value.reply is DNS_TEMPORARY
    assert failed.value.detail == (
        f"no DNS answer for quiet.test (MX): resolver 127.0.0.1 port {port} did not answer"
    )

"""End to end on the embedded bus: SMTP intake, one-click HTTP, admin API, events consumer."""

from __future__ import annotations

import asyncio
import http.client
import json
import smtplib
from pathlib import Path

from services.bouncer.parse import parse_message
from services.bouncer.report import ReportKind
from shared.bounceclass.rules import parse_rules
from shared.suppressions import SuppressionTable
from shared.wire.records import (
    Delivery,
    Event,
    EventKind,
    SmtpReply,
    Suppression,
    SuppressionReason,
)
from shared.wire.tokens import unsubscribe_proof, unsubscribe_token, verp_address
from shared.wire.topics import EVENTS, OUTBOUND, SUPPRESSIONS, suppression_key
from testing import eventschema
from tests.services.bouncer.conftest import ADMIN_TOKEN, BOUNCE_DOMAIN, SECRET, Running
from tests.services.bouncer.conftest import wait_for_records as wait_for

DATA = Path(__file__).resolve().parents[2] / "data" / "bounces"
MSGID = "0123456789abcdef0123456789abcdef"


def send(port: int, rcpt: str, data: bytes) -> tuple[int, bytes]:
    """One SMTP transaction with the null sender; the DATA reply (or the RCPT refusal)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("mx.remote.test")
        code, text = client.mail("<>")
        if code >= 400:
            return code, text
        code, text = client.rcpt(rcpt)
        if code >= 400:
            return code, text
        return client.data(data)


def http_request(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One HTTP request over a real socket."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def fixture_to(name: str, rcpt: str) -> bytes:
    """A golden fixture addressed to ``rcpt``, with CRLF line ends (smtplib sends bytes as is)."""
    raw = (DATA / name).read_bytes().replace(b"b+token@bounces.postline.test", rcpt.encode())
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


async def test_dsn_to_verp_address_bounces_and_suppresses(running: Running) -> None:
    rcpt = verp_address("b", BOUNCE_DOMAIN, MSGID, "nobody@customer.example", SECRET)
    data = fixture_to("postfix_dsn_user_unknown.eml", rcpt)
    code, text = await asyncio.to_thread(send, running.smtp_port, rcpt, data)
    assert (code, text) == (250, b"2.0.0 Report accepted")
    events = await wait_for(running.bus, EVENTS, lambda rs: len(rs) >= 1)
    eventschema.assert_published(events)
    (event,) = events
    assert isinstance(event, Event)
    assert (event.kind, event.message_id, event.recipient) == (
        EventKind.BOUNCED,
        MSGID,
        "nobody@customer.example",
    )
    assert event.classification == "hard"
    assert event.reason == "userunknown"
    assert event.reply is not None and event.reply.enhanced == "5.1.1"
    table = await running.bus.read_table(SUPPRESSIONS.name)
    record = SUPPRESSIONS.decode(table[suppression_key("nobody@customer.example").encode()])
    assert record.reason is SuppressionReason.HARD_BOUNCE
    assert record.bounce_reason == "userunknown"


async def test_text_bounce_without_status_gets_a_reason_and_a_derived_status(
    running: Running,
) -> None:
    # Yahoo's text bounce carries a 554 and words, no enhanced code: the event says why
    # (userunknown) and carries the status derived from the reply code and the reason.
    rcpt = verp_address("b", BOUNCE_DOMAIN, MSGID, "lost.soul@yahoo.com", SECRET)
    code, _ = await asyncio.to_thread(
        send, running.smtp_port, rcpt, fixture_to("yahoo_text_no_account.eml", rcpt)
    )
    assert code == 250
    (event,) = await wait_for(running.bus, EVENTS, lambda rs: len(rs) >= 1)
    eventschema.assert_published([event])
    assert isinstance(event, Event)
    assert (event.kind, event.classification, event.reason) == (
        EventKind.BOUNCED,
        "hard",
        "userunknown",
    )
    assert event.reply is not None and event.reply.enhanced == "5.1.1"
    table = await running.bus.read_table(SUPPRESSIONS.name)
    record = SUPPRESSIONS.decode(table[suppression_key("lost.soul@yahoo.com").encode()])
    assert record.bounce_reason == "userunknown"


async def test_dsn_about_an_alias_keeps_both_recipients(running: Running) -> None:
    # Issue 19, item 3: the VERP token's recipient (the address we sent to) is acted on;
    # the DSN's Original-Recipient is kept in its own field, its Final-Recipient in detail.
    rcpt = verp_address("b", BOUNCE_DOMAIN, MSGID, "info@bakery-customer.example", SECRET)
    data = fixture_to("postfix_dsn_alias_forwarded.eml", rcpt)
    code, _ = await asyncio.to_thread(send, running.smtp_port, rcpt, data)
    assert code == 250
    (event,) = await wait_for(running.bus, EVENTS, lambda rs: len(rs) >= 1)
    eventschema.assert_published([event])
    assert isinstance(event, Event) and event.kind is EventKind.BOUNCED
    assert event.recipient == "info@bakery-customer.example"
    assert event.original_recipient == "info@bakery-customer.example"
    assert event.detail.startswith("dsn (tried owner.bakery@webmail-provider.example): 550")
    table = await running.bus.read_table(SUPPRESSIONS.name)
    assert list(table) == [suppression_key("info@bakery-customer.example").encode()]


async def test_forged_verp_token_is_refused(running: Running) -> None:
    good = verp_address("b", BOUNCE_DOMAIN, MSGID, "victim@customer.example", SECRET)
    forged = good.replace("-victim=", "-other=")
    assert forged != good
    wrong_key = verp_address("b", BOUNCE_DOMAIN, MSGID, "victim@customer.example", b"x" * 32)
    for rcpt in (forged, wrong_key, f"postmaster@{BOUNCE_DOMAIN}", "b+junk@elsewhere.test"):
        code, text = await asyncio.to_thread(
            send, running.smtp_port, rcpt, fixture_to("postfix_dsn_user_unknown.eml", rcpt)
        )
        assert (code, text[:5]) == (550, b"5.1.1")
    assert await running.bus.read_table(SUPPRESSIONS.name) == {}


async def test_arf_report_complains_and_suppresses(running: Running) -> None:
    rcpt = verp_address("b", BOUNCE_DOMAIN, MSGID, "annoyed@yahoo.com", SECRET)
    code, _ = await asyncio.to_thread(
        send, running.smtp_port, rcpt, fixture_to("arf_abuse_yahoo.eml", rcpt)
    )
    assert code == 250
    (event,) = await wait_for(running.bus, EVENTS, lambda rs: len(rs) >= 1)
    eventschema.assert_published([event])
    assert isinstance(event, Event) and event.kind is EventKind.COMPLAINED
    assert event.reason == "feedback"
    table = await running.bus.read_table(SUPPRESSIONS.name)
    record = SUPPRESSIONS.decode(table[b"annoyed@yahoo.com"])
    assert record.reason is SuppressionReason.COMPLAINT
    assert record.bounce_reason == "feedback"


async def test_ses_complaint_by_sns_complains_and_suppresses(running: Running) -> None:
    rcpt = verp_address("b", BOUNCE_DOMAIN, MSGID, "t.nguyen@freemail-provider.example", SECRET)
    code, _ = await asyncio.to_thread(
        send, running.smtp_port, rcpt, fixture_to("ses_sns_json_complaint.eml", rcpt)
    )
    assert code == 250
    (event,) = await wait_for(running.bus, EVENTS, lambda rs: len(rs) >= 1)
    eventschema.assert_published([event])
    assert isinstance(event, Event) and event.kind is EventKind.COMPLAINED
    assert event.recipient == "t.nguyen@freemail-provider.example"
    table = await running.bus.read_table(SUPPRESSIONS.name)
    record = SUPPRESSIONS.decode(table[b"t.nguyen@freemail-provider.example"])
    assert record.reason is SuppressionReason.COMPLAINT


async def test_hotmail_jmrp_complaint_complains_and_suppresses(running: Running) -> None:
    rcpt = verp_address("b", BOUNCE_DOMAIN, MSGID, "lena.hoffmann_77@hotmail.com", SECRET)
    code, _ = await asyncio.to_thread(
        send, running.smtp_port, rcpt, fixture_to("hotmail_jmrp_complaint.eml", rcpt)
    )
    assert code == 250
    (event,) = await wait_for(running.bus, EVENTS, lambda rs: len(rs) >= 1)
    eventschema.assert_published([event])
    assert isinstance(event, Event) and event.kind is EventKind.COMPLAINED
    table = await running.bus.read_table(SUPPRESSIONS.name)
    record = SUPPRESSIONS.decode(table[b"lena.hoffmann_77@hotmail.com"])
    assert record.reason is SuppressionReason.COMPLAINT


async def test_auto_reply_is_recorded_never_suppressed(running: Running) -> None:
    rcpt = verp_address("b", BOUNCE_DOMAIN, MSGID, "jane@customer.example", SECRET)
    code, _ = await asyncio.to_thread(
        send, running.smtp_port, rcpt, fixture_to("autoreply_vacation.eml", rcpt)
    )
    assert code == 250
    (event,) = await wait_for(running.bus, EVENTS, lambda rs: len(rs) >= 1)
    eventschema.assert_published([event])
    assert isinstance(event, Event) and event.kind is EventKind.AUTO_REPLIED
    assert await running.bus.read_table(SUPPRESSIONS.name) == {}


async def test_list_moderation_notice_never_suppresses_the_list(running: Running) -> None:
    list_address = "garden-club@lists.allotment-society.example"
    rcpt = verp_address("b", BOUNCE_DOMAIN, MSGID, list_address, SECRET)
    code, _ = await asyncio.to_thread(
        send, running.smtp_port, rcpt, fixture_to("mailman_held_for_moderation.eml", rcpt)
    )
    assert code == 250
    (event,) = await wait_for(running.bus, EVENTS, lambda rs: len(rs) >= 1)
    eventschema.assert_published([event])
    assert isinstance(event, Event) and event.kind is EventKind.AUTO_REPLIED
    assert (event.recipient, event.classification) == (list_address, "auto_reply")
    assert await running.bus.read_table(SUPPRESSIONS.name) == {}


async def test_mailto_unsubscribe_is_scoped(running: Running) -> None:
    token = unsubscribe_token(SECRET, "reader@customer.example", "shop.example", MSGID)
    rcpt = f"unsubscribe+{token}@{BOUNCE_DOMAIN}"
    code, _ = await asyncio.to_thread(
        send, running.smtp_port, rcpt, b"Subject: unsubscribe\r\n\r\n"
    )
    assert code == 250
    table = await wait_for(running.bus, SUPPRESSIONS, lambda rs: len(rs) >= 1)
    (record,) = table
    assert isinstance(record, Suppression)
    assert (record.address, record.scope, record.reason) == (
        "reader@customer.example",
        "shop.example",
        SuppressionReason.UNSUBSCRIBE,
    )
    # The proof, kept with the entry: how, which message, the token's HMAC (re-verifiable).
    proof = unsubscribe_proof(SECRET, "reader@customer.example", "shop.example", MSGID)
    assert (record.method, record.message_id, record.proof) == ("mailto", MSGID, proof)


async def test_one_click_post_valid_and_forged(running: Running) -> None:
    token = unsubscribe_token(SECRET, "reader@customer.example", "shop.example", MSGID)
    body = b"List-Unsubscribe=One-Click"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _ = await asyncio.to_thread(
        http_request, running.http_port, "POST", "/unsubscribe/" + token, body, form
    )
    assert status == 200
    table = await running.bus.read_table(SUPPRESSIONS.name)
    assert suppression_key("reader@customer.example", "shop.example").encode() in table
    (entry,) = [SUPPRESSIONS.decode(v) for v in table.values()]
    proof = unsubscribe_proof(SECRET, "reader@customer.example", "shop.example", MSGID)
    assert (entry.method, entry.message_id, entry.proof, entry.at > 0) == (
        "one_click",
        MSGID,
        proof,
        True,
    )
    assert proof != unsubscribe_proof(SECRET, "someone@else.example", "shop.example", MSGID)
    events = await wait_for(running.bus, EVENTS, lambda rs: len(rs) >= 1)
    eventschema.assert_published(events)
    assert [e.kind for e in events if isinstance(e, Event)] == [EventKind.UNSUBSCRIBED]

    forged = unsubscribe_token(b"not-the-secret-0123456789", "x@customer.example", "", MSGID)
    status, _ = await asyncio.to_thread(
        http_request, running.http_port, "POST", "/unsubscribe/" + forged, body, form
    )
    assert status == 404
    status, _ = await asyncio.to_thread(
        http_request, running.http_port, "POST", "/unsubscribe/" + token, b"x=1", form
    )
    assert status == 400
    status, page = await asyncio.to_thread(
        http_request, running.http_port, "GET", "/unsubscribe/" + token
    )
    assert status == 200 and b"method='post'" in page and b"reader@customer.example" in page
    assert len(await running.bus.read_table(SUPPRESSIONS.name)) == 1  # GET changed nothing


async def test_admin_api(running: Running) -> None:
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    port = running.admin_port
    status, _ = await asyncio.to_thread(http_request, port, "GET", "/admin/suppressions")
    assert status == 401
    status, _ = await asyncio.to_thread(
        http_request, port, "GET", "/admin/suppressions", b"", {"Authorization": "Bearer nope"}
    )
    assert status == 401
    body = b'{"address": "Someone@Example.org", "reason": "manual", "detail": "ticket 12"}'
    status, _ = await asyncio.to_thread(
        http_request, port, "POST", "/admin/suppressions", body, auth
    )
    assert status == 201
    status, found = await asyncio.to_thread(
        http_request, port, "GET", "/admin/suppressions/someone@example.org", b"", auth
    )
    assert status == 200 and b"ticket 12" in found
    status, csv_text = await asyncio.to_thread(
        http_request, port, "GET", "/admin/suppressions.csv", b"", auth
    )
    assert status == 200
    assert (
        csv_text.decode().splitlines()[0]
        == "address,scope,reason,source,at,detail,tenant,bounce_reason,method,proof,message_id,"
        "address_hash"
    )
    assert "someone@example.org,,manual,api," in csv_text.decode()
    status, _ = await asyncio.to_thread(
        http_request, port, "DELETE", "/admin/suppressions/someone@example.org", b"", auth
    )
    assert status == 200
    status, _ = await asyncio.to_thread(
        http_request, port, "GET", "/admin/suppressions/someone@example.org", b"", auth
    )
    assert status == 404
    status, _ = await asyncio.to_thread(
        http_request, port, "POST", "/admin/suppressions", b'{"address": "x"}', auth
    )
    assert status == 400


async def test_bounced_event_suppresses_and_sends_dsn(running: Running) -> None:
    event = Event(
        kind=EventKind.BOUNCED,
        message_id=MSGID,
        at=1_763_000_000.0,
        recipient="nobody@customer.example",
        domain="customer.example",
        sender="news@shop.example",
        reply=SmtpReply(code=550, enhanced="5.1.1", text="User unknown"),
        mx="mail.customer.example",
        stage="deliverer",
        headers=b"From: news@shop.example\r\nMessage-ID: <m1@shop.example>\r\n",
    )
    bulk = Event(
        kind=EventKind.EXPIRED,
        message_id="f" * 32,
        at=1_763_000_000.0,
        recipient="slow@customer.example",
        sender="news@shop.example",
        reply=SmtpReply(code=554, enhanced="5.4.7", text="delivery time expired"),
        stage="deliverer",
        headers=b"List-Unsubscribe: <mailto:u@shop.example>\r\n",
    )
    null_sender = Event(
        kind=EventKind.BOUNCED,
        message_id="e" * 32,
        at=1.0,
        recipient="a@b.example",
        sender="",
        reply=SmtpReply(code=550, enhanced="5.1.1"),
        stage="deliverer",
    )
    await running.bus.publish([EVENTS.out(event), EVENTS.out(bulk), EVENTS.out(null_sender)])
    (dsn,) = await wait_for(running.bus, OUTBOUND, lambda rs: len(rs) >= 1)
    assert isinstance(dsn, Delivery)
    assert (dsn.mail_from, dsn.rcpt_to, dsn.is_dsn, dsn.domain) == (
        "",
        ("news@shop.example",),
        True,
        "shop.example",
    )
    report = parse_message(dsn.data)
    assert report.kind is ReportKind.DSN
    assert [(r.recipient, r.status) for r in report.recipients] == [
        ("nobody@customer.example", "5.1.1")
    ]
    await wait_for(running.bus, SUPPRESSIONS, lambda rs: len(rs) >= 2)
    table = await running.bus.read_table(SUPPRESSIONS.name)
    assert b"nobody@customer.example" in table and b"a@b.example" in table
    assert b"slow@customer.example" not in table  # one expiry is one soft bounce of two
    record = SUPPRESSIONS.decode(table[b"nobody@customer.example"])
    assert record.bounce_reason == "userunknown"  # the deliverer's reply, read alike


# Suppression scopes per tenant: the bouncer input, the suppression it writes, and the
# decision ingest (global and tenant entries, at RCPT) and the signer (plus domain entries,
# bulk mail) then take from the followed table (shared.suppressions).
COMPLAINT_RULE = """
[[rule]]
name = "reported-as-spam"
class = "complaint"
pattern = 'reported as spam'
override = true
"""


async def table_of(running: Running) -> SuppressionTable:
    table = SuppressionTable()
    await table.load(running.bus)
    return table


def bounced(tenant: str, recipient: str, reply: SmtpReply) -> Event:
    return Event(
        kind=EventKind.BOUNCED,
        message_id=MSGID,
        at=1.0,
        recipient=recipient,
        domain=recipient.rpartition("@")[2],
        sender="news@shop.example",
        reply=reply,
        stage="deliverer",
        tenant=tenant,
    )


async def test_hard_bounce_is_global_and_the_dsn_keeps_the_tenant(running: Running) -> None:
    event = bounced("t1", "gone@customer.example", SmtpReply(code=550, enhanced="5.1.1"))
    await running.bus.publish([EVENTS.out(event)])
    (record,) = await wait_for(running.bus, SUPPRESSIONS, lambda rs: len(rs) >= 1)
    assert (record.reason, record.tenant, record.scope) == (SuppressionReason.HARD_BOUNCE, "", "")
    (dsn,) = await wait_for(running.bus, OUTBOUND, lambda rs: len(rs) >= 1)
    assert isinstance(dsn, Delivery) and dsn.is_dsn and dsn.tenant == "t1"
    table = await table_of(running)
    for tenant in ("t1", "t2", ""):  # the mailbox is gone for every business
        assert table.is_suppressed("gone@customer.example", tenant=tenant)


async def test_complaint_applies_to_the_tenant_that_sent(running: Running) -> None:
    # A reply the rules classify as a complaint (a provider's "reported as spam" rejection).
    reply = SmtpReply(code=550, enhanced="5.7.1", text="reported as spam")
    running.stage.outcomes.table = parse_rules(COMPLAINT_RULE, "test")
    await running.bus.publish([EVENTS.out(bounced("t1", "annoyed@customer.example", reply))])
    (record,) = await wait_for(running.bus, SUPPRESSIONS, lambda rs: len(rs) >= 1)
    assert (record.reason, record.tenant) == (SuppressionReason.COMPLAINT, "t1")
    table = await table_of(running)
    assert table.is_suppressed("annoyed@customer.example", tenant="t1")
    assert not table.is_suppressed("annoyed@customer.example", tenant="t2")


async def test_unsubscribe_applies_to_bulk_mail_from_its_domain(running: Running) -> None:
    token = unsubscribe_token(SECRET, "reader@customer.example", "shop.example", MSGID)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _ = await asyncio.to_thread(
        http_request,
        running.http_port,
        "POST",
        "/unsubscribe/" + token,
        b"List-Unsubscribe=One-Click",
        form,
    )
    assert status == 200
    (record,) = await wait_for(running.bus, SUPPRESSIONS, lambda rs: len(rs) >= 1)
    assert (record.tenant, record.scope) == ("", "shop.example")
    table = await table_of(running)
    reader = "reader@customer.example"
    assert table.is_suppressed(reader, tenant="t1", sender_domain="shop.example")  # bulk
    assert not table.is_suppressed(reader, tenant="t1")  # ingest at RCPT; transactional mail
    assert not table.is_suppressed(reader, tenant="t1", sender_domain="other.example")


async def test_admin_api_tenant_entries(running: Running) -> None:
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    port = running.admin_port
    body = json.dumps(
        {"address": "r@customer.example", "tenant": "t1", "scope": "shop.example"}
    ).encode()
    status, answer = await asyncio.to_thread(
        http_request, port, "POST", "/admin/suppressions", body, auth
    )
    assert status == 201 and json.loads(answer)["tenant"] == "t1"
    body = json.dumps({"address": "r@customer.example", "tenant": "T 1"}).encode()
    status, answer = await asyncio.to_thread(
        http_request, port, "POST", "/admin/suppressions", body, auth
    )
    assert status == 400 and b"tenant id" in answer
    table = await table_of(running)
    assert table.is_suppressed("r@customer.example", tenant="t1", sender_domain="shop.example")
    assert not table.is_suppressed("r@customer.example", tenant="t2", sender_domain="shop.example")
    path = "/admin/suppressions/r@customer.example?scope=shop.example&tenant=t1"
    status, _ = await asyncio.to_thread(http_request, port, "DELETE", path, b"", auth)
    assert status == 200
    assert await running.bus.read_table(SUPPRESSIONS.name) == {}

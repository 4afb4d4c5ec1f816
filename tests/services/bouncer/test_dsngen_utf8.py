"""DSNs for internationalised and malformed addresses (RFC 6533): 7-bit, parseable back, and
SMTPUTF8 only when the sender's own address needs it."""

from __future__ import annotations

from email import message_from_bytes

from services.bouncer.config import DsnPolicy
from services.bouncer.dsngen import DsnGenerator, build_dsn
from services.bouncer.parse import parse_message
from services.bouncer.report import ReportKind
from services.bouncer.utf8addr import address_field, decode_utf8_address, utf8_addr_xtext
from shared.wire.records import Event, EventKind, SmtpReply
from shared.wire.topics import OUTBOUND

POLICY = DsnPolicy(postmaster="postmaster@relay.test", reporting_mta="relay.test")
UTF8_HEADERS = "From: news@shop.example\r\nSubject: Grüße\r\nMessage-ID: <m1@shop.example>\r\n"


def bounced(recipient: str, sender: str = "news@shop.example", text: str = "no") -> Event:
    return Event(
        kind=EventKind.BOUNCED,
        message_id="ab" * 16,
        at=1_763_000_000.0,
        recipient=recipient,
        sender=sender,
        reply=SmtpReply(code=553, enhanced="5.6.7", text=text),
        mx="mx.customer.example",
        headers=UTF8_HEADERS.encode(),
    )


def test_xtext_follows_rfc_6533() -> None:
    assert utf8_addr_xtext("jöran@bücher.test") == "j\\x{F6}ran@b\\x{FC}cher.test"
    assert utf8_addr_xtext("日@例.jp") == "\\x{65E5}@\\x{4F8B}.jp"  # no leading zeros
    assert utf8_addr_xtext("a+b=c\\d e@x") == "a\\x{2B}b\\x{3D}c\\x{5C}d\\x{20}e@x"
    assert utf8_addr_xtext("\U0001f600@x") == "\\x{1F600}@x"
    assert address_field("a+b@x.test") == "rfc822; a+b@x.test"
    assert address_field("jöran@x.test") == "utf-8; j\\x{F6}ran@x.test"
    for address in ("jöran@bücher.test", "a+b=c\\d e@x", "\U0001f600@x"):
        assert decode_utf8_address(utf8_addr_xtext(address)) == address


def test_utf8_recipient_dsn_is_7bit_and_parses_back() -> None:
    event = bounced("jöran@bücher.test", text="SMTPUTF8 is required \u2013 nicht angeboten")
    raw = build_dsn(event, POLICY, event.at)
    assert raw.isascii()  # deliverable to an MX without 8BITMIME and SMTPUTF8
    assert b"Final-Recipient: utf-8; j\\x{F6}ran@b\\x{FC}cher.test\r\n" in raw
    assert b"Diagnostic-Code: smtp; 553 5.6.7 SMTPUTF8 is required \\u2013 nicht" in raw
    report = parse_message(raw)
    assert report.kind is ReportKind.DSN
    (status,) = report.recipients
    assert (status.recipient, status.status) == ("jöran@bücher.test", "5.6.7")
    message = message_from_bytes(raw)
    human, _, headers = message.get_payload()
    assert "jöran@bücher.test" in human.get_payload(decode=True).decode("utf-8")
    assert "Grüße" in headers.get_payload(decode=True).decode("utf-8")
    for part in (human, headers):  # RFC 2045 6.7: quoted-printable lines of 76 at most
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert all(len(line) <= 76 for line in str(part.get_payload()).splitlines())

    (record,) = [DsnGenerator(POLICY).for_event(event)]
    assert record is not None and record.value is not None
    delivery = OUTBOUND.decode(record.value)
    assert (delivery.smtputf8, delivery.body_8bit) == (False, False)  # ASCII sender


def test_utf8_sender_dsn_asks_for_smtputf8() -> None:
    record = DsnGenerator(POLICY).for_event(
        bounced("a@customer.example", sender="bös@shop.example")
    )
    assert record is not None and record.value is not None
    delivery = OUTBOUND.decode(record.value)
    assert delivery.rcpt_to == ("bös@shop.example",)
    assert delivery.domain == "shop.example"
    assert delivery.smtputf8 and delivery.body_8bit  # its To: is UTF-8 (RFC 6532)
    assert "To: <bös@shop.example>".encode() in delivery.data


def test_recipient_with_control_characters_never_reaches_a_header() -> None:
    event = bounced("nul\x00\r\nBcc: x@evil.test")
    raw = build_dsn(event, POLICY, event.at)
    assert b"\x00" not in raw and b"\r\nBcc:" not in raw
    assert b"Final-Recipient: utf-8; nul\\x{FFFD}\\x{0D}\\x{0A}Bcc:\\x{20}x@evil.test" in raw


def test_no_dsn_to_a_sender_that_is_not_a_mailbox() -> None:
    generator = DsnGenerator(POLICY)
    assert generator.for_event(bounced("a@customer.example", sender="bad sender@x.test")) is None
    assert generator.for_event(bounced("a@customer.example", sender="ok@x.test")) is not None

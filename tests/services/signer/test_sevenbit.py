"""8-bit MIME made 7-bit before signing (sevenbit.py): valid MIME afterwards (RFC 2045), the
decoded octets exactly the original ones, everything that was 7-bit byte for byte the same,
and what cannot be converted left alone with the reason."""

from __future__ import annotations

import email
from email.message import Message
from email.policy import compat32

import pytest

from services.signer.sevenbit import to_7bit

#: Realistic German: a few percent of the characters are not ASCII.
GERMAN = (
    "Sehr geehrte Kundin, sehr geehrter Kunde,\r\n\r\nvielen Dank für Ihre Bestellung. Ihre "
    "Ware wird morgen früh versandt;\r\ndie Sendungsnummer folgt in einer weiteren E-Mail.\r\n"
    "\r\nMit freundlichen Grüßen\r\nIhr Kundenservice\r\n"
)
RUSSIAN = "Здравствуйте! Ваш заказ отправлен сегодня утром.\r\n" * 3
JAPANESE = "こんにちは。ご注文の商品を本日発送いたしました。\r\n" * 3
HTML = "<html><body><p>Grüße aus Köln \u2013 <b>schöne</b> Woche</p></body></html>\r\n"
ATTACHMENT = (
    b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
)


def alternative(text: str = GERMAN, html: str = HTML) -> bytes:
    """multipart/mixed (labelled 8bit) holding multipart/alternative (8-bit text and HTML)
    and a 7-bit base64 attachment, with a preamble and an epilogue."""
    return (
        b"From: a@example.test\r\nTo: b@example.test\r\nSubject: news\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n"
        b"This is a multi-part message.\r\n"
        b"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
        b"--inner\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + text.encode() + b"\r\n"
        b"--inner\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + html.encode() + b"\r\n"
        b"--inner--\r\n"
        b"--outer\r\n" + ATTACHMENT + b"--outer--\r\nepilogue\r\n"
    )


def leaves(message: bytes) -> list[Message]:
    parsed = email.message_from_bytes(message, policy=compat32)
    return [part for part in parsed.walk() if not part.is_multipart()]


def assert_valid_7bit(data: bytes) -> None:
    assert data.isascii()
    for part in leaves(data):
        encoding = str(part.get("Content-Transfer-Encoding", "7bit")).lower()
        if encoding == "quoted-printable":  # RFC 2045 6.7 (5): lines of 76 at most
            assert all(len(line) <= 76 for line in str(part.get_payload()).splitlines())
        if encoding == "base64":
            assert all(len(line) <= 76 for line in str(part.get_payload()).splitlines())


def test_a_7bit_message_is_returned_as_it_is() -> None:
    message = alternative(text="plain ascii\r\n", html="<p>ascii</p>\r\n")
    assert message.isascii()
    conversion = to_7bit(message)
    assert conversion.data is message
    assert (conversion.parts, conversion.kept_8bit) == (0, "")


def test_multipart_alternative_parts_become_quoted_printable() -> None:
    message = alternative()
    conversion = to_7bit(message)
    data = conversion.data
    assert conversion.parts == 2 and conversion.kept_8bit == ""
    assert_valid_7bit(data)
    text, html, pdf = leaves(data)
    assert text["Content-Transfer-Encoding"] == "quoted-printable"
    assert text.get_payload(decode=True) == GERMAN.encode()  # the octets, exactly
    assert html.get_payload(decode=True) == HTML.encode()
    assert pdf.get_payload(decode=True) == b"%PDF-1.4\n"
    assert text.get_content_charset() == "utf-8"  # the label stays true
    # Only the changed parts changed: the boundaries, preamble, epilogue, the attachment,
    # and the top header but its Content-Transfer-Encoding (now 7bit) are the same bytes.
    assert data.startswith(
        b"From: a@example.test\r\nTo: b@example.test\r\nSubject: news\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n"
        b"Content-Transfer-Encoding: 7bit\r\n\r\nThis is a multi-part message.\r\n"
        b"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\n"
    )
    assert b"\r\n--inner--\r\n--outer\r\n" + ATTACHMENT + b"--outer--\r\nepilogue\r\n" in data
    assert data.count(b"Content-Transfer-Encoding") == 4  # replaced, never added twice


def test_mostly_non_latin_text_takes_base64_which_is_shorter() -> None:
    for text in (RUSSIAN, JAPANESE):
        data = to_7bit(alternative(text=text)).data
        assert_valid_7bit(data)
        plain = leaves(data)[0]
        assert plain["Content-Transfer-Encoding"] == "base64"
        assert plain.get_payload(decode=True) == text.encode()


@pytest.mark.parametrize(
    ("text", "most"),
    [(GERMAN, 1.10), (RUSSIAN, 1.40), (JAPANESE, 1.40)],
)
def test_size_cost(text: str, most: float) -> None:
    """The price of converting: a few % for Latin text (quoted-printable), a third at most
    for other scripts (base64), measured on the body octets."""
    message = b"From: a@example.test\r\nSubject: s\r\n\r\n" + (text * 20).encode()
    data = to_7bit(message).data
    body, converted = message.split(b"\r\n\r\n", 1)[1], data.split(b"\r\n\r\n", 1)[1]
    assert len(converted) / len(body) <= most


def test_nested_message_rfc822_is_converted_inside() -> None:
    inner = (
        b"From: c@example.test\r\nSubject: forwarded\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + GERMAN.encode()
    )
    message = (
        b"From: a@example.test\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
        b"--b1\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n"
        b"--b1\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + inner
        + b"\r\n--b1--\r\n"
    )
    conversion = to_7bit(message)
    data = conversion.data
    assert conversion.parts == 1 and conversion.kept_8bit == ""
    assert_valid_7bit(data)
    assert b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" in data
    assert b"--b1\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n" in data  # untouched
    attached = email.message_from_bytes(data, policy=compat32).get_payload()[1]
    (embedded,) = attached.get_payload()
    assert embedded["Subject"] == "forwarded"
    assert embedded["Content-Transfer-Encoding"] == "quoted-printable"
    assert embedded.get_payload(decode=True) == GERMAN.encode()


def test_a_non_mime_8bit_message_becomes_mime() -> None:
    message = b"From: a@example.test\r\nSubject: hi\r\n\r\n" + GERMAN.encode()
    data = to_7bit(message).data
    assert_valid_7bit(data)
    assert data.startswith(
        b"From: a@example.test\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    )
    (part,) = leaves(data)
    assert part.get_payload(decode=True) == GERMAN.encode()


def test_a_non_mime_body_that_is_not_utf8_says_unknown_8bit() -> None:
    latin1 = "Grüße aus Köln\r\n".encode("latin-1")
    data = to_7bit(b"Subject: hi\r\n\r\n" + latin1).data
    assert b"Content-Type: text/plain; charset=unknown-8bit\r\n" in data  # RFC 1428
    assert leaves(data)[0].get_payload(decode=True) == latin1


def test_binary_attachment_and_bare_line_feeds_round_trip() -> None:
    blob = bytes(range(256)) * 3
    message = (
        b"From: a@example.test\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=z\n\n"
        b"--z\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\n"
        + "Grüße\nzweite Zeile\n".encode("latin-1")
        + b"\n--z\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: binary\n\n"
        + blob
        + b"\n--z--\n"
    )
    data = to_7bit(message).data
    assert_valid_7bit(data)
    text, attachment = leaves(data)
    assert text.get_payload(decode=True) == "Grüße\nzweite Zeile\n".encode("latin-1")
    assert attachment["Content-Transfer-Encoding"] == "base64"
    assert attachment.get_payload(decode=True) == blob
    assert b"\r\n" not in data  # its own line breaks


def test_trailing_whitespace_and_long_lines_survive_quoted_printable() -> None:
    text = "Grüße   \r\n" + "ä" * 300 + "\r\n.\r\nFrom the start\r\n"
    message = b"Content-Type: text/plain; charset=utf-8\r\nMIME-Version: 1.0\r\n\r\n"
    data = to_7bit(message + text.encode()).data
    assert_valid_7bit(data)
    assert leaves(data)[0].get_payload(decode=True) == text.encode()


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"Subject: Gr\xc3\xbc\xc3\x9fe\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n", "header section"),
        (
            b"DKIM-Signature: v=1; d=example.test\r\nSubject: s\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n",
            "already DKIM-signed",
        ),
        (
            b"MIME-Version: 1.0\r\nContent-Type: multipart/signed; boundary=s; "
            b'protocol="application/pkcs7-signature"\r\n\r\n--s\r\n'
            b"Content-Type: text/plain\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n--s--\r\n",
            "signed or encrypted",
        ),
        (
            b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\nR3L\xc3\xbc\r\n",
            "base64 part",
        ),
        (
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n"
            b"--x\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n",
            "closing boundary",
        ),
    ],
)
def test_what_cannot_be_converted_stays_8bit_with_a_reason(message: bytes, reason: str) -> None:
    conversion = to_7bit(message)
    assert reason in conversion.kept_8bit
    assert not conversion.data.isascii()


def test_a_partly_convertible_message_says_what_is_left() -> None:
    message = (
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n"
        b"--m\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n"
        b"--m\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n"
        b"\r\nraw \xc3\xbc in quoted-printable\r\n--m--\r\n"
    )
    conversion = to_7bit(message)
    assert conversion.parts == 1
    assert conversion.kept_8bit == "8-bit octets in a quoted-printable part"
    # The short first part takes base64 (12 characters against quoted-printable's 15).
    assert (
        b"--m\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nR3LDvMOfZQ==\r\n--m\r\n"
    ) in conversion.data

"""The messages the API builds (pure logic): the structure, the encodings of non-ASCII text
and names (RFC 2047, RFC 2231), short lines, CRLF, and Bcc never named; parsed back with
the standard library to check what a mail reader will see."""

from __future__ import annotations

from email import message_from_bytes
from email import policy as policies
from email.message import EmailMessage

import pytest

from services.ingest.api import compose, problems
from services.ingest.api.types import Attachment, MessageRequest, Tracking

NOW = 1_900_000_000.0


def build(**fields: object) -> bytes:
    body: dict[str, object] = {"from_": "App <app@acme.test>", "to": ["ann@example.org"]}
    body.update(fields)
    return compose.message(MessageRequest(**body), NOW, 16).data  # type: ignore[arg-type]


def parsed(data: bytes) -> EmailMessage:
    msg = message_from_bytes(data, policy=policies.default)
    assert isinstance(msg, EmailMessage)
    return msg


def lines_are_short_and_crlf(data: bytes) -> None:
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 78


def test_text_and_html_are_an_alternative_plain_first() -> None:
    data = build(subject="Hi", text="Hello.\n", html="<p>Hello.</p>")
    msg = parsed(data)
    assert msg.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert data.count(b"MIME-Version") == 1
    lines_are_short_and_crlf(data)


def test_non_ascii_names_and_subject_are_encoded_words_and_bodies_7bit() -> None:
    text = "Grüße aus Köln — " + "sehr lange Zeile " * 20 + "\n"
    data = build(
        from_="Jörg Müller <app@acme.test>",
        to=["Zoë <zoe@example.org>"],
        subject="Überweisung bestätigt ✓ " * 4,
        text=text,
    )
    assert data.isascii()
    lines_are_short_and_crlf(data)
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in head  # RFC 2047
    msg = parsed(data)
    assert msg["Subject"] == "Überweisung bestätigt ✓ " * 4
    assert msg["From"].addresses[0].display_name == "Jörg Müller"
    assert msg["To"].addresses[0].display_name == "Zoë"
    assert msg.get_content().replace("\r\n", "\n") == text


def test_attachments_with_long_non_ascii_names_are_rfc_2231_and_base64() -> None:
    name = "Rechnung für März " + "x" * 80 + ".pdf"
    pdf = bytes(range(256)) * 40
    data = build(
        text="See attached.\n",
        attachments=[Attachment(filename=name, content=pdf, content_type="application/pdf")],
    )
    assert data.isascii()
    lines_are_short_and_crlf(data)
    assert b"filename*" in data  # RFC 2231, continued
    msg = parsed(data)
    assert msg.get_content_type() == "multipart/mixed"
    [attached] = list(msg.iter_attachments())
    assert attached.get_filename() == name
    assert attached["Content-Transfer-Encoding"] == "base64"
    assert attached.get_content() == pdf


def test_inline_images_join_the_html_in_a_related_part() -> None:
    logo = Attachment(
        filename="logo.png",
        content=b"\x89PNG...",
        content_type="image/png",
        disposition="inline",
        content_id="logo",
    )
    data = build(text="Hi", html='<img src="cid:logo">', attachments=[logo])
    msg = parsed(data)
    assert msg.get_content_type() == "multipart/alternative"
    _plain, related = msg.iter_parts()
    assert related.get_content_type() == "multipart/related"
    html, image = related.iter_parts()
    assert html.get_content_type() == "text/html"
    assert (image["Content-ID"], image.get_content_disposition()) == ("<logo>", "inline")


def test_bcc_is_in_the_envelope_only_and_extra_headers_are_kept() -> None:
    request = MessageRequest(
        from_="app@acme.test",
        to=["ann@example.org", "ANN@example.org"],
        cc=["bob@example.org"],
        bcc=["hidden@example.org"],
        text="x",
        headers={"In-Reply-To": "<a@b>", "X-Campaign": "spring"},
        tags={"Campaign": "spring"},
    )
    composed = compose.message(request, NOW, 16)
    assert composed.recipients == ["ann@example.org", "bob@example.org", "hidden@example.org"]
    assert b"hidden" not in composed.data
    msg = parsed(composed.data)
    assert (msg["In-Reply-To"], msg["X-Campaign"]) == ("<a@b>", "spring")
    assert composed.tags == {"campaign": "spring"}
    assert composed.send_at == 0.0


def test_a_non_ascii_address_is_smtputf8_with_utf8_headers() -> None:
    composed = compose.message(
        MessageRequest(from_="app@acme.test", to=["jörg@exämple.org"], text="x"), NOW, 16
    )
    assert composed.smtputf8
    assert "jörg@exämple.org".encode() in composed.data  # RFC 6532, no encoded words


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"headers": {"Subject": "x"}}, "$.headers.Subject"),
        ({"headers": {"X-Bad": "a\r\nBcc: victim@example.org"}}, "$.headers.X-Bad"),
        ({"subject": "a\nb"}, "$.subject"),
        ({"tags": {"bad name": "x"}}, "$.tags.bad name"),
        ({"tracking": {"opens": True}}, "$.tracking"),
    ],
)
def test_what_would_change_the_message_unseen_is_refused(
    fields: dict[str, object], where: str
) -> None:
    body: dict[str, object] = {"from_": "app@acme.test", "to": ["a@example.org"], "text": "x"}
    body.update(fields)
    if "tracking" in fields:
        body["tracking"] = Tracking(opens=True)
    with pytest.raises(problems.ApiProblem) as raised:
        compose.message(MessageRequest(**body), NOW, 16)  # type: ignore[arg-type]
    assert [e.field for e in raised.value.problem.errors] == [where]

"""The verdict's marks on the message bytes, and a sender's DKIM signature left valid."""

from __future__ import annotations

from services.ingest.headers import parse
from services.ingest.scanning.rewrite import mark, signed_fields
from services.ingest.scanning.rspamd import Verdict

BODY = b"\r\nBody line one.\r\nBody \xc3\xa9 two.\r\n"
MESSAGE = (
    b"Received: from client (x) by us\r\n"
    b"From: a@example.com\r\nTo: b@example.org\r\nSubject: Hello\r\nX-Spam: No\r\n" + BODY
)


def verdict(**kw: object) -> Verdict:
    base: dict[str, object] = {"action": "add header", "score": 7.0, "required": 6.0}
    base["symbols"] = {}
    return Verdict(**(base | kw))  # type: ignore[arg-type]


def test_add_header_without_headers_of_its_own_adds_the_spam_flag_and_keeps_the_rest() -> None:
    marked = mark(MESSAGE, verdict(), rewrite_subject=True)
    assert marked.data == b"X-Spam: Yes\r\n" + MESSAGE
    assert marked.note == ""


def test_the_verdicts_own_headers_replace_the_flag_and_its_removals_apply() -> None:
    v = verdict(add_headers=(("X-Spam-Status", "Yes, score=7.00"),), remove_headers=("X-Spam",))
    data = mark(MESSAGE, v, rewrite_subject=True).data
    assert data.startswith(b"X-Spam-Status: Yes, score=7.00\r\nReceived:")
    assert parse(data).get("x-spam") == []
    assert data.endswith(BODY)


def test_rewrite_subject_replaces_the_subject_and_encodes_non_ascii() -> None:
    v = verdict(action="rewrite subject", subject="*** SPAM *** Hello \u00e9t\u00e9")
    data = mark(MESSAGE, v, rewrite_subject=True).data
    msg = parse(data)
    assert len(msg.get("subject")) == 1
    assert msg.get("subject")[0] == "=?utf-8?q?***_SPAM_***_Hello_=C3=A9t=C3=A9?="
    assert data.isascii() is False  # the body's 8-bit bytes are untouched
    assert data.endswith(BODY)


def test_tag_mode_leaves_the_subject_and_flags_instead() -> None:
    v = verdict(action="rewrite subject", subject="*** SPAM *** Hello")
    data = mark(MESSAGE, v, rewrite_subject=False).data
    assert parse(data).get("subject") == ["Hello"]
    assert data.startswith(b"X-Spam: Yes\r\n")


def test_a_subject_the_senders_dkim_signature_covers_is_kept() -> None:
    signed = (
        b"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s1;\r\n"
        b"\th=From : To:\r\n\t Subject; bh=abc=; b=def=\r\n" + MESSAGE
    )
    v = verdict(action="rewrite subject", subject="*** SPAM *** Hello", remove_headers=("Subject",))
    marked = mark(signed, v, rewrite_subject=True)
    assert parse(marked.data).get("subject") == ["Hello"]
    assert marked.data == b"X-Spam: Yes\r\n" + signed
    assert "DKIM signature covers it" in marked.note


def test_signed_fields_reads_every_signature_h_tag() -> None:
    msg = parse(
        b"DKIM-Signature: v=1; h=from:subject; b=x\r\n"
        b"DKIM-Signature: v=1; h=From:Date:Message-ID; b=y\r\n\r\n"
    )
    assert signed_fields(msg) == {"from", "subject", "date", "message-id"}


def test_a_header_value_from_the_scanner_cannot_start_a_field_or_end_the_headers() -> None:
    v = verdict(add_headers=(("X-Spam-Report", "line\r\nBcc: victim@example.net\r\n\r\nx"),))
    data = mark(MESSAGE, v, rewrite_subject=True).data
    assert parse(data).get("bcc") == []
    assert data.startswith(b"X-Spam-Report: line Bcc: victim@example.net x\r\n")
    assert data.endswith(BODY)


def test_a_bad_header_name_from_the_scanner_is_left_out() -> None:
    v = verdict(add_headers=(("Bad Name", "v"), ("X-Ok", "v")))
    assert mark(MESSAGE, v, rewrite_subject=True).data == b"X-Ok: v\r\n" + MESSAGE

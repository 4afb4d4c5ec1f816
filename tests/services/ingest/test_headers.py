"""Header work on raw bytes: parsing keeps every byte, tags, trace and missing headers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.ingest import headers
from services.ingest.smuggling import has_bare_cr_or_lf, normalise

RAW = (
    b"From: =?utf-8?q?J=C3=B6ran?= <j@example.com>\r\n"
    b"Subject: a folded\r\n\tsubject line\r\n"
    b"X-Postline-Campaign:  spring \r\n"
    b"x-postline-TAGS: a,b\r\n"
    b"\r\n"
    b"body \xff\xfe\r\n"
)


def test_parse_roundtrip_and_unfolding() -> None:
    msg = headers.parse(RAW)
    assert msg.to_bytes() == RAW
    assert [f.name for f in msg.fields] == [
        "from",
        "subject",
        "x-postline-campaign",
        "x-postline-tags",
    ]
    assert msg.get("SUBJECT") == ["a folded\tsubject line"]
    assert msg.rest == b"\r\nbody \xff\xfe\r\n"


@given(st.binary(max_size=300))
def test_parse_keeps_any_bytes(data: bytes) -> None:
    assert headers.parse(data).to_bytes() == data


def test_take_tags_removes_control_headers() -> None:
    msg, tags = headers.take_tags(headers.parse(RAW), max_tags=16)
    assert tags == {"campaign": "spring", "tags": "a,b"}
    assert b"postline" not in msg.to_bytes().lower()
    _, tags = headers.take_tags(headers.parse(RAW), max_tags=1)
    assert tags == {"campaign": "spring"}


def test_from_domains() -> None:
    assert headers.from_domains(headers.parse(RAW)) == ["example.com"]
    two = b"From: a@x.test, B <b@Y.test>\r\n\r\n"
    assert headers.from_domains(headers.parse(two)) == ["x.test", "y.test"]
    assert headers.from_domains(headers.parse(b"Subject: x\r\n\r\n")) is None
    assert headers.from_domains(headers.parse(b"From: a@x.test\r\nFrom: b@y.test\r\n\r\n")) is None
    assert headers.from_domains(headers.parse(b"From: undisclosed\r\n\r\n")) is None


def trace(**kw: object) -> headers.Trace:
    args: dict[str, object] = {
        "helo": "client.test",
        "ip": "192.0.2.1",
        "hostname": "mx.test",
        "message_id": "abc",
        "at": 0.0,
    }
    args.update(kw)
    return headers.Trace(**args)  # type: ignore[arg-type]


def test_complete_adds_received_message_id_and_date() -> None:
    out = headers.complete(headers.parse(b"From: a@x.test\r\n\r\nhi\r\n"), trace())
    assert out == (
        b"Received: from client.test ([192.0.2.1])\r\n\tby mx.test (Postline) with ESMTP\r\n"
        b"\tid abc;\r\n\tThu, 01 Jan 1970 00:00:00 +0000\r\n"
        b"From: a@x.test\r\nMessage-ID: <abc@mx.test>\r\nDate: Thu, 01 Jan 1970 00:00:00 +0000\r\n"
        b"\r\nhi\r\n"
    )


def test_complete_keeps_existing_and_names_tls_and_user() -> None:
    raw = b"From: a@x.test\r\nDate: whenever\r\nMessage-ID: <m@x>\r\n\r\nhi\r\n"
    out = headers.complete(
        headers.parse(raw), trace(tls="TLSv1.3", auth_user="alice", ip="2001:db8::1")
    )
    head, _, rest = out.partition(b"\r\nFrom: ")
    assert b"([IPv6:2001:db8::1])" in head and b"with ESMTPSA" in head
    assert b"(using TLSv1.3)" in head and b"(authenticated as alice);" in head
    assert b"From: " + rest == raw


def test_received_cannot_be_injected_through_helo() -> None:
    out = trace(helo="evil\r\nX-Injected: 1 (x)").received()
    assert out.count(b"\r\n") == 4 and b"\nX-Injected" not in out


def test_smuggling_detection_and_normalising() -> None:
    assert not has_bare_cr_or_lf(b"a\r\nb\r\n")
    assert has_bare_cr_or_lf(b"a\nb\r\n") and has_bare_cr_or_lf(b"a\rb\r\n")
    assert normalise(b"a\nb\rc\r\n\n.\r\n") == b"a\r\nb\r\nc\r\n\r\n.\r\n"


@given(st.binary(max_size=200))
def test_normalised_data_has_no_bare_line_ends(data: bytes) -> None:
    assert not has_bare_cr_or_lf(normalise(data))

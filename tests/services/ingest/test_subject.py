"""The decoded Subject on the ``accepted`` event: RFC 2047 words, UTF-8, folding, the cut."""

from __future__ import annotations

import aiosmtplib
import pytest

from services.ingest import headers, subject
from shared.wire.records import EventKind
from tests.services.ingest.conftest import PASSWORD, StartIngest


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hello", "hello"),
        ("=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus Berlin", "Grüße aus Berlin"),
        ("=?ISO-8859-1?B?SmV0enQgZvxyIGFsbGU=?=", "Jetzt für alle"),
        ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),  # RFC 2047 6.2: blanks between words go
        ("Grüße, raw UTF-8", "Grüße, raw UTF-8"),  # RFC 6532
        ("a\tfolded   subject", "a folded subject"),
        ("=?x-unknown?q?abc?=", "=?x-unknown?q?abc?="),  # an unknown charset: as written
        ("bell\x07 inside", "bell inside"),
        ("x" * 300, "x" * subject.MAX_SUBJECT),
    ],
)
def test_decode(raw: str, expected: str) -> None:
    assert subject.decode(raw) == expected


def test_subject_of_a_message() -> None:
    msg = headers.parse(b"From: a@b.test\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\tmenu\r\n\r\nx")
    assert subject.subject(msg) == "café menu"
    assert subject.subject(headers.parse(b"From: a@b.test\r\n\r\nbody")) == ""


async def test_the_accepted_event_carries_the_decoded_subject(start_ingest: StartIngest) -> None:
    ingest = await start_ingest()
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1",
        port=ingest.port("smtps"),
        use_tls=True,
        tls_context=ingest.pki.client_context(),
    )
    await client.connect()
    await client.login("alice", PASSWORD)
    message = (
        b"From: Alice <alice@example.com>\r\nTo: bob@dest.test\r\n"
        b"Subject: =?utf-8?q?Winter_sale=3A_30=25_off?=\r\n =?utf-8?b?w6RsbGVz?=\r\n"
        b"\r\nHi Bob.\r\n"
    )
    await client.sendmail("alice@example.com", ["bob@dest.test"], message)
    await client.quit()
    [event] = await ingest.events(1)
    assert event.kind is EventKind.ACCEPTED
    assert event.subject == "Winter sale: 30% offälles"

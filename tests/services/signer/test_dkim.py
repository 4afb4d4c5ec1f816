"""DKIM signatures made by DkimSigner, checked by dkimpy's verifier against real DNS."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from dkim import MessageFormatError, rfc822_parse
from dkim.canonicalization import Relaxed
from hypothesis import given, settings
from hypothesis import strategies as st

from services.signer.dkim import DkimSigner, parse, relaxed_body, sign_message
from services.signer.keys import KeyStore
from shared.errors import SigningError
from testing.dnsserver import DnsServer
from tests.services.signer.conftest import DOMAIN, add_key, dns_records, verify

PLAIN = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: bob@dest.test\r\n"
    b"Subject: Hello\r\n"
    b"Date: Fri, 27 Nov 2026 22:00:00 +0000\r\n"
    b"Message-ID: <1@example.test>\r\n"
    b"Received: from client by ingest\r\n"
    b"\r\n"
    b"Hello Bob,\r\n  with  trailing spaces   \r\n\r\n\r\n"
)
EIGHT_BIT = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: bob@dest.test\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln\r\n"
)
SMTPUTF8 = (
    "From: Jos\u00e9 <jos\u00e9@example.test>\r\n"
    "To: \u7528\u6237@\u4f8b\u5b50.test\r\n"
    "Subject: \u00a1Hola!\r\n"
    "\r\n"
    "\u00a1Hola, \u4e16\u754c!\r\n"
).encode()


def signed(message: bytes, store: KeyStore, algorithms: tuple[str, ...]) -> bytes:
    keys = [k for k in store.signing_keys(DOMAIN, time.time()) if k.algorithm in algorithms]
    assert [k.algorithm for k in keys] == list(algorithms)
    return sign_message(message, keys, int(time.time())) + message


@pytest.mark.parametrize("message", [PLAIN, EIGHT_BIT, SMTPUTF8], ids=["7bit", "8bit", "smtputf8"])
@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
async def test_single_signature_verifies(store: KeyStore, message: bytes, algorithm: str) -> None:
    async with DnsServer(dns_records(store)) as dns:
        assert await verify(signed(message, store, (algorithm,)), dns.port)


@pytest.mark.parametrize("message", [PLAIN, EIGHT_BIT, SMTPUTF8], ids=["7bit", "8bit", "smtputf8"])
async def test_dual_signatures_both_verify(store: KeyStore, message: bytes) -> None:
    both = signed(message, store, ("rsa", "ed25519"))
    assert both.count(b"DKIM-Signature:") == 2
    assert b"a=rsa-sha256" in both.split(b"DKIM-Signature:")[1]  # RSA on top
    async with DnsServer(dns_records(store)) as dns:
        assert await verify(both, dns.port, 0)
        assert await verify(both, dns.port, 1)


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
async def test_modified_body_or_header_fails(store: KeyStore, algorithm: str) -> None:
    message = signed(PLAIN, store, (algorithm,))
    body_changed = message.replace(b"Hello Bob", b"Hello Bub")
    header_changed = message.replace(b"Subject: Hello", b"Subject: Hellp")
    second_from = b"From: mallory@evil.test\r\n" + message
    async with DnsServer(dns_records(store)) as dns:
        assert await verify(message, dns.port)
        assert not await verify(body_changed, dns.port)
        assert not await verify(header_changed, dns.port)
        assert not await verify(second_from, dns.port)  # From is oversigned


async def test_relaxed_survives_refolding_and_whitespace(store: KeyStore) -> None:
    message = signed(PLAIN, store, ("rsa",))
    refolded = message.replace(b"Subject: Hello", b"Subject:   \r\n\tHello")
    async with DnsServer(dns_records(store)) as dns:
        assert await verify(refolded, dns.port)


async def test_wrong_published_key_fails(store: KeyStore, tmp_path: Path) -> None:
    message = signed(PLAIN, store, ("rsa",))
    add_key(tmp_path, DOMAIN, "r1", "rsa")
    other = KeyStore(tmp_path)
    other.load()
    async with DnsServer(dns_records(other)) as dns:
        assert not await verify(message, dns.port)


def test_tags_relaxed_no_length_header_set(store: KeyStore) -> None:
    keys = store.signing_keys(DOMAIN, time.time())
    header = sign_message(PLAIN, keys[:1], 1_800_000_000, expire_after=3600).decode()
    flat = re.sub(r"\r\n\s+", " ", header)
    assert "c=relaxed/relaxed" in flat
    assert "; l=" not in flat
    assert "t=1800000000" in flat
    assert "x=1800003600" in flat
    h = re.search(r"h=([^;]+);", flat)
    assert h is not None
    signed_names = [name.strip() for name in h.group(1).split(":")]
    assert signed_names.count("from") == 2  # oversigned
    assert {"to", "subject", "date", "message-id"} <= set(signed_names)
    assert "received" not in signed_names  # RFC 6376 5.4: trace fields are not signed


def test_no_x_tag_by_default(store: KeyStore) -> None:
    keys = store.signing_keys(DOMAIN, time.time())
    assert b"x=" not in sign_message(PLAIN, keys[:1], 1_800_000_000)


def test_list_unsubscribe_post_is_signed(store: KeyStore) -> None:
    message = b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" + PLAIN
    keys = store.signing_keys(DOMAIN, time.time())
    header = re.sub(rb"\r\n\s+", b" ", sign_message(message, keys[:1], 1))
    assert b"list-unsubscribe-post" in header


def test_message_without_from_is_refused(store: KeyStore) -> None:
    keys = store.signing_keys(DOMAIN, time.time())
    with pytest.raises(SigningError, match="no From"):
        DkimSigner(b"To: x@y.test\r\n\r\nbody\r\n").signatures(keys, 1)


def test_no_keys_no_signature() -> None:
    assert sign_message(PLAIN, [], 1) == b""


# Bodies made of what relaxed canonicalisation cares about: spaces, tabs, line ends (bare
# CR and LF too), text.
_BODY_PIECES = st.sampled_from(
    [b" ", b"  ", b"\t", b" \t ", b"\r\n", b"\r", b"\n", b"a", b"word", b"\xc3\xa9"]
)
# Messages made of what splitting headers from the body cares about: line ends, folding
# whitespace, field names, an mbox "From " line, text.
_MESSAGE_PIECES = st.sampled_from(
    [
        b"\r\n",
        b"\n",
        b"\r",
        b" ",
        b"\t",
        b"Subject:",
        b"From: a@b.test",
        b"From ",
        b"x",
        b"\r\n\r\n",
    ]
)


@settings(max_examples=400)
@given(st.lists(_BODY_PIECES, max_size=60).map(b"".join))
def test_relaxed_body_is_byte_for_byte_dkimpys(body: bytes) -> None:
    # Our faster canonicalisation must hash exactly what every verifier hashes.
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)


@settings(max_examples=600)
@given(st.lists(_MESSAGE_PIECES, max_size=40).map(b"".join))
def test_parse_is_byte_for_byte_dkimpys(message: bytes) -> None:
    # Splitting only the header block must give what dkimpy's whole-message split gives,
    # including its refusals.
    try:
        expected: object = rfc822_parse(message)
    except (MessageFormatError, IndexError) as exc:
        expected = type(exc)
    try:
        got: object = parse(message)
    except (MessageFormatError, IndexError) as exc:
        got = type(exc)
    assert got == expected

"""Policy over real SMTP: relay, anti-spoofing, limits, rates, smuggling, pipelining, 8-bit."""

from __future__ import annotations

import re

import aiosmtplib
import pytest

from shared.wire.records import EventKind
from shared.wire.topics import SUBMITTED
from tests.services.ingest.conftest import Running, StartIngest
from tests.services.ingest.sessions import MESSAGE, logged_in, rejection, relay_session


async def test_relay_denied_without_auth_from_untrusted_network(start_ingest: StartIngest) -> None:
    ingest = await start_ingest()
    raw = await relay_session(ingest)
    assert (await raw.cmd("MAIL FROM:<x@example.com>"))[0] == 250
    assert await raw.cmd("RCPT TO:<bob@dest.test>") == (554, "5.7.1 Relay access denied")
    await raw.close()
    events = await ingest.events(1)
    assert events[0].check == "relay" and events[0].recipient == "bob@dest.test"
    assert events[0].reply is not None and events[0].reply.code == 554


async def test_trusted_network_relays_without_auth(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.0/8"])
    raw = await relay_session(ingest)
    await raw.cmd("MAIL FROM:<app@anything.test>")
    assert (await raw.cmd("RCPT TO:<bob@dest.test>"))[0] == 250
    assert (await raw.cmd("DATA"))[0] == 354
    code, text = await raw.cmd(MESSAGE + b".")
    assert code == 250 and "queued as" in text
    [sub] = await ingest.records(SUBMITTED, 1)
    assert sub.client.auth_user is None and sub.client.tls is None
    assert b"with ESMTP\r\n" in sub.data


async def test_spoofed_mail_from_is_refused(start_ingest: StartIngest) -> None:
    ingest = await start_ingest()
    client = await logged_in(ingest)
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as info:
        await client.sendmail("ceo@bank.test", ["bob@dest.test"], MESSAGE)
    assert info.value.code == 550
    assert info.value.message == "5.7.1 Sender domain bank.test not allowed for you"
    await rejection(ingest, "sender_domain")


async def test_spoofed_from_header_is_refused(start_ingest: StartIngest) -> None:
    ingest = await start_ingest()
    client = await logged_in(ingest)
    forged = MESSAGE.replace(b"From: alice@example.com", b'From: "Bank" <ceo@bank.test>')
    with pytest.raises(aiosmtplib.SMTPDataError) as info:
        await client.sendmail("alice@example.com", ["bob@dest.test"], forged)
    assert (info.value.code, info.value.message) == (
        550,
        "5.7.1 From header domain bank.test not allowed for you",
    )
    await rejection(ingest, "from_domain")


async def test_missing_from_header_is_refused(start_ingest: StartIngest) -> None:
    ingest = await start_ingest()
    client = await logged_in(ingest)
    with pytest.raises(aiosmtplib.SMTPDataError) as info:
        await client.sendmail("alice@example.com", ["bob@dest.test"], b"Subject: x\r\n\r\nhi\r\n")
    assert info.value.code == 550
    await rejection(ingest, "from_header")


async def test_declared_size_over_limit(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(limits={"max_message_size": "2KiB"})
    client = await logged_in(ingest)
    assert client.esmtp_extensions["size"] == "2048"
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as info:
        await client.mail("alice@example.com", options=["SIZE=4096"])
    assert (info.value.code, info.value.message) == (
        552,
        "5.3.4 Message size exceeds fixed maximum",
    )
    await rejection(ingest, "size")


async def test_sent_size_over_limit(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(limits={"max_message_size": "2KiB"})
    client = await logged_in(ingest)
    big = MESSAGE + b"x" * 70 + b"\r\n"
    await client.mail("alice@example.com")  # no SIZE declared: counted while reading DATA
    await client.rcpt("bob@dest.test")
    with pytest.raises(aiosmtplib.SMTPDataError) as info:
        await client.data(big * 40)
    assert (info.value.code, info.value.message[:5]) == (552, "5.3.4")
    await rejection(ingest, "size")
    # The session goes on: a small message still passes.
    await client.sendmail("alice@example.com", ["bob@dest.test"], MESSAGE)
    assert len(await ingest.records(SUBMITTED, 1)) == 1


async def test_recipient_limit(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(limits={"max_recipients": 2})
    client = await logged_in(ingest)
    await client.mail("alice@example.com")
    assert (await client.rcpt("a@dest.test"))[0] == 250
    assert (await client.rcpt("b@dest.test"))[0] == 250
    with pytest.raises(aiosmtplib.SMTPRecipientRefused) as info:
        await client.rcpt("c@dest.test")
    assert (info.value.code, info.value.message) == (452, "4.5.3 Too many recipients")
    code, _ = await client.data(MESSAGE)
    assert code == 250
    [sub] = await ingest.records(SUBMITTED, 1)
    assert sub.rcpt_to == ("a@dest.test", "b@dest.test")


async def test_message_rate_per_ip(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(rate={"per_ip": 0.001, "per_ip_burst": 1})
    client = await logged_in(ingest)
    await client.sendmail("alice@example.com", ["bob@dest.test"], MESSAGE)
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as info:
        await client.sendmail("alice@example.com", ["bob@dest.test"], MESSAGE)
    assert (info.value.code, info.value.message) == (
        450,
        "4.7.1 Message rate limit exceeded, try later",
    )
    events = await ingest.events(2)
    assert [e.check for e in events if e.kind == EventKind.REJECTED] == ["ip_rate"]


async def test_message_rate_per_user(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(rate={"per_user": 0.001, "per_user_burst": 1})
    client = await logged_in(ingest)
    await client.sendmail("alice@example.com", ["bob@dest.test"], MESSAGE)
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as info:
        await client.sendmail("alice@example.com", ["bob@dest.test"], MESSAGE)
    assert info.value.code == 450
    # Another user from the same address has its own bucket.
    other = await logged_in(ingest, "bob")
    bob_message = MESSAGE.replace(b"alice@example.com", b"bob@bob.test")
    await other.sendmail("bob@bob.test", ["x@dest.test"], bob_message)


async def test_pipelined_transaction(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.1/32"])
    raw = await relay_session(ingest)
    await raw.send(
        b"MAIL FROM:<app@example.com>\r\nRCPT TO:<a@dest.test>\r\nRCPT TO:<b@dest.test>\r\nDATA\r\n"
    )
    assert [(await raw.reply())[0] for _ in range(4)] == [250, 250, 250, 354]
    await raw.send(
        MESSAGE + b".\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<c@dest.test>\r\nDATA\r\n"
    )
    assert [(await raw.reply())[0] for _ in range(4)] == [250, 250, 250, 354]
    await raw.send(MESSAGE + b".\r\nQUIT\r\n")
    assert [(await raw.reply())[0] for _ in range(2)] == [250, 221]
    subs = await ingest.records(SUBMITTED, 2)
    assert sorted(s.rcpt_to for s in subs) == [("a@dest.test", "b@dest.test"), ("c@dest.test",)]


async def test_smtputf8_and_8bit_body_arrive_byte_exact(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.1/32"])
    original = (
        "From: Jöran <jöran@例え.test>\r\n"
        "To: пользователь@пример.рф\r\n"
        "Subject: Grüße\r\n"
        "Message-ID: <1@例え.test>\r\n"
        "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "Ça va? 日本語\r\n"
        "..leading dot kept once\r\n"
    ).encode() + b"raw latin-1 byte: \xe9\xff\r\n"
    raw = await relay_session(ingest)
    code, _ = await raw.cmd("MAIL FROM:<jöran@例え.test> SMTPUTF8 BODY=8BITMIME".encode())
    assert code == 250
    assert (await raw.cmd("RCPT TO:<пользователь@пример.рф>".encode()))[0] == 250
    assert (await raw.cmd("DATA"))[0] == 354
    assert (await raw.cmd(original + b"."))[0] == 250
    [sub] = await ingest.records(SUBMITTED, 1)
    assert sub.mail_from == "jöran@例え.test"
    assert sub.rcpt_to == ("пользователь@пример.рф",)
    assert sub.smtputf8 and sub.body_8bit
    received, rest = split_first_field(sub.data)
    assert received.startswith(b"Received: from client.test ([127.0.0.1])")
    assert b"with UTF8SMTP" in received
    # Only the Received field was added; the message follows it byte for byte
    # (the dot-stuffed line arrives unstuffed, RFC 5321 4.5.2).
    expected = original.replace(b"\r\n..leading", b"\r\n.leading")
    assert rest == expected


def split_first_field(data: bytes) -> tuple[bytes, bytes]:
    """The first header field (with its folded lines) and everything after it.

    RFC 5322 2.2.3: a field ends at the first CRLF not followed by white space. Parsing the
    fold keeps the test independent of what the field contains (its date, its weekday).
    """
    match = re.match(rb"[^\r\n]*(?:\r\n[ \t][^\r\n]*)*\r\n", data)
    assert match is not None, data[:200]
    return match.group(0)[:-2], data[match.end() :]


async def test_utf8_address_without_smtputf8_is_refused(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.1/32"])
    raw = await relay_session(ingest)
    code, text = await raw.cmd("MAIL FROM:<jöran@example.com>".encode())
    assert (code, text) == (553, "5.6.7 Non-ASCII address requires SMTPUTF8")
    assert (await raw.cmd("MAIL FROM:<app@example.com>"))[0] == 250
    assert (await raw.cmd("RCPT TO:<пользователь@пример.рф>".encode()))[0] == 553
    await rejection_count(ingest, ["smtputf8", "smtputf8"])


async def rejection_count(ingest: Running, checks: list[str]) -> None:
    events = await ingest.events(len(checks))
    assert [e.check for e in events] == checks


async def test_bare_lf_is_refused(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.1/32"])
    raw = await relay_session(ingest)
    await raw.cmd("MAIL FROM:<app@example.com>")
    await raw.cmd("RCPT TO:<bob@dest.test>")
    assert (await raw.cmd("DATA"))[0] == 354
    smuggled = (
        MESSAGE + b"\n.\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@dest.test>\r\n"
        b"DATA\r\nFrom: evil@example.com\r\n\r\nsmuggled\r\n"
    )
    assert await raw.cmd(smuggled + b".") == (550, "5.6.0 Bare CR or LF in message not allowed")
    await rejection(ingest, "smuggling")
    # The hidden "second message" never became a transaction.
    assert (await raw.cmd("NOOP"))[0] == 250


async def test_bare_cr_and_lf_normalised_when_configured(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.1/32"], smuggling="normalise")
    raw = await relay_session(ingest)
    await raw.cmd("MAIL FROM:<app@example.com>")
    await raw.cmd("RCPT TO:<bob@dest.test>")
    await raw.cmd("DATA")
    assert (await raw.cmd(MESSAGE + b"one\ntwo\rthree\r\n."))[0] == 250
    [sub] = await ingest.records(SUBMITTED, 1)
    assert sub.data.endswith(b"Hello.\r\none\r\ntwo\r\nthree\r\n")


async def test_our_own_failure_is_451_never_5xx(
    start_ingest: StartIngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.1/32"])

    def broken(address: str, **scopes: str) -> bool:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(ingest.stage.core.policy.suppressions, "is_suppressed", broken)
    raw = await relay_session(ingest)
    await raw.cmd("MAIL FROM:<app@example.com>")
    assert await raw.cmd("RCPT TO:<bob@dest.test>") == (
        451,
        "4.3.0 Internal error, please try again later",
    )
    assert (await raw.cmd("RSET"))[0] == 250
    await raw.close()

"""Submission over STARTTLS and implicit TLS with AUTH, end to end on the embedded bus."""

from __future__ import annotations

import base64
import logging
import re

import aiosmtplib
import pytest

from shared.wire.records import EventKind, Submission
from shared.wire.topics import SUBMITTED
from tests.services.ingest.client import Raw
from tests.services.ingest.conftest import HOSTNAME, PASSWORD, StartIngest

MESSAGE = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: bob@dest.test\r\n"
    b"Subject: hello\r\n"
    b"X-Postline-Campaign: spring-sale\r\n"
    b"X-Postline-Tag: vip\r\n"
    b"\r\n"
    b"Hi Bob.\r\n"
)


def queued_id(text: str) -> str:
    match = re.search(r"2\.0\.0 Ok: queued as ([0-9a-f]{32})", text)
    assert match, text
    return match.group(1)


async def test_starttls_auth_submission_is_recorded(start_ingest: StartIngest) -> None:
    ingest = await start_ingest()
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1",
        port=ingest.port("submission"),
        start_tls=False,
        tls_context=ingest.pki.client_context(),
    )
    await client.connect()
    ehlo = await client.ehlo()
    assert "STARTTLS" in ehlo.message and "AUTH" not in ehlo.message
    await client.starttls(tls_context=ingest.pki.client_context(), server_hostname="localhost")
    await client.ehlo()
    for ext in ("pipelining", "8bitmime", "smtputf8", "size", "enhancedstatuscodes", "auth"):
        assert client.supports_extension(ext), ext
    assert client.esmtp_extensions["size"] == str(25 * 1024 * 1024)
    assert "starttls" not in client.esmtp_extensions
    await client.login("alice", PASSWORD)
    _, reply = await client.sendmail("alice@example.com", ["bob@dest.test"], MESSAGE)
    await client.quit()
    message_id = queued_id(reply)

    [sub] = await ingest.records(SUBMITTED, 1)
    assert isinstance(sub, Submission)
    assert sub.id == message_id
    assert sub.mail_from == "alice@example.com" and sub.rcpt_to == ("bob@dest.test",)
    assert sub.client.auth_user == "alice" and sub.client.listener == "submission"
    assert sub.client.tls in ("TLSv1.2", "TLSv1.3")
    assert sub.tags == {"campaign": "spring-sale", "tag": "vip"}
    head, _, body = sub.data.partition(b"\r\n\r\n")
    assert body == b"Hi Bob.\r\n"
    assert head.startswith(b"Received: from ")
    assert f"by {HOSTNAME} (Postline) with ESMTPSA".encode() in head
    assert f"(using {sub.client.tls})".encode() in head
    assert b"(authenticated as alice)" in head
    assert f"Message-ID: <{message_id}@{HOSTNAME}>".encode() in head
    assert b"\r\nDate: " in head
    assert b"X-Postline" not in sub.data
    # Everything the client sent (minus control headers) is there byte for byte.
    assert b"From: Alice <alice@example.com>\r\nTo: bob@dest.test\r\nSubject: hello\r\n" in head

    events = await ingest.events(1)
    assert [(e.kind, e.message_id) for e in events] == [(EventKind.ACCEPTED, message_id)]


async def test_implicit_tls_submission(start_ingest: StartIngest) -> None:
    ingest = await start_ingest()
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1",
        port=ingest.port("smtps"),
        use_tls=True,
        tls_context=ingest.pki.client_context(),
    )
    await client.connect()
    await client.ehlo()
    assert client.supports_extension("auth") and not client.supports_extension("starttls")
    await client.login("alice", PASSWORD)
    _, reply = await client.sendmail("alice@example.com", ["bob@dest.test"], MESSAGE)
    await client.quit()
    [sub] = await ingest.records(SUBMITTED, 1)
    assert sub.id == queued_id(reply)
    assert sub.client.listener == "smtps" and sub.client.tls in ("TLSv1.2", "TLSv1.3")


async def test_auth_over_plaintext_is_refused(start_ingest: StartIngest) -> None:
    ingest = await start_ingest()
    raw = await Raw.open(ingest.port("submission"))
    assert (await raw.reply())[0] == 220
    code, text = await raw.cmd("EHLO client.test")
    assert code == 250 and "AUTH" not in text
    code, text = await raw.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==")
    assert (code, text[:6]) == (538, "5.7.11")
    assert await raw.cmd("MAIL FROM:<alice@example.com>") == (530, "5.7.0 Authentication required")
    await raw.close()


def plain(user: str, password: str) -> str:
    return "AUTH PLAIN " + base64.b64encode(f"\0{user}\0{password}".encode()).decode()


async def test_wrong_password_then_throttled(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(limits={"auth_failures": 3})
    context = ingest.pki.client_context()
    raw = await Raw.open(ingest.port("smtps"), tls=context)
    await raw.reply()
    await raw.cmd("EHLO client.test")
    for _ in range(2):
        assert await raw.cmd(plain("alice", "wrong")) == (
            535,
            "5.7.8 Authentication credentials invalid",
        )
    assert await raw.cmd(plain("alice", "wrong")) == (421, "4.7.0 Too many authentication failures")
    assert await raw.closed()
    # The address stays blocked: the next connection is turned away at the greeting,
    # even with the right password.
    raw = await Raw.open(ingest.port("smtps"), tls=context)
    assert await raw.reply() == (421, "4.7.0 Too many authentication failures")
    assert await raw.closed()
    events = await ingest.events(2)
    assert [e.check for e in events] == ["auth_throttle", "auth_throttle"]
    assert all(e.kind == EventKind.REJECTED for e in events)


async def test_unknown_user_fails_like_a_wrong_password(start_ingest: StartIngest) -> None:
    ingest = await start_ingest()
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1",
        port=ingest.port("smtps"),
        use_tls=True,
        tls_context=ingest.pki.client_context(),
    )
    await client.connect()
    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as info:
        await client.login("mallory", PASSWORD)
    assert (info.value.code, info.value.message) == (
        535,
        "5.7.8 Authentication credentials invalid",
    )
    await client.login("alice", PASSWORD)
    await client.quit()


async def test_secrets_never_logged(
    start_ingest: StartIngest, caplog: pytest.LogCaptureFixture
) -> None:
    ingest = await start_ingest()
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="mail.log")  # aiosmtpd's own, at its most verbose
    raw = await Raw.open(ingest.port("smtps"), tls=ingest.pki.client_context())
    await raw.reply()
    await raw.cmd("EHLO client.test")
    assert (await raw.cmd(plain("alice", PASSWORD)))[0] == 235
    await raw.close()
    raw = await Raw.open(ingest.port("smtps"), tls=ingest.pki.client_context())
    await raw.reply()
    await raw.cmd("EHLO client.test")
    assert (await raw.cmd("AUTH LOGIN"))[0] == 334
    assert (await raw.cmd(base64.b64encode(b"alice")))[0] == 334
    assert (await raw.cmd(base64.b64encode(b"guess-" + PASSWORD.encode())))[0] == 535
    await raw.close()
    assert any(r.name == "mail.log" for r in caplog.records)
    secrets = (PASSWORD, plain("alice", PASSWORD).split()[-1], "guess-")
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        assert not any(s in text for s in secrets), text

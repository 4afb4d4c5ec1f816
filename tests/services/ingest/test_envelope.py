"""MAIL FROM / RCPT TO addresses and command lines over a real socket (RFC 5321 4.1)."""

from __future__ import annotations

from shared.wire.topics import SUBMITTED
from tests.services.ingest.client import Raw
from tests.services.ingest.conftest import Running, StartIngest

MESSAGE = b"From: app@example.com\r\nTo: x@dest.test\r\nSubject: hi\r\n\r\nHello.\r\n"
BAD_ADDRESS = (501, "5.1.3 Bad address syntax")
CONTROL = (501, "5.5.2 Syntax error: control character in command")


async def trusted(start_ingest: StartIngest) -> tuple[Running, Raw]:
    ingest = await start_ingest(trusted_networks=["127.0.0.0/8"])
    raw = await Raw.open(ingest.port("relay"))
    assert (await raw.reply())[0] == 220
    assert (await raw.cmd("EHLO client.test"))[0] == 250
    return ingest, raw


async def test_control_characters_in_a_command_are_refused(start_ingest: StartIngest) -> None:
    _, raw = await trusted(start_ingest)
    assert (await raw.cmd("MAIL FROM:<app@example.com>"))[0] == 250
    assert await raw.cmd(b"RCPT TO:<nul\x00x@d0.example>") == CONTROL
    assert await raw.cmd(b"RCPT TO:<bob@dest.test>\x00") == CONTROL
    assert await raw.cmd(b"RCPT TO:<bob@dest.test> \x1b[0m") == CONTROL
    assert await raw.cmd(b"RCPT TO:<bob\rx@dest.test>") == CONTROL
    assert await raw.cmd(b"HELO a\x00b") == CONTROL
    assert (await raw.cmd(b"RC\x00PT TO:<bob@dest.test>"))[0] == 500
    assert (await raw.cmd("RSET"))[0] == 250
    assert await raw.cmd(b"MAIL FROM:<a\x01p@example.com>") == CONTROL
    await raw.close()


async def test_malformed_addresses_get_501_5_1_3(start_ingest: StartIngest) -> None:
    _, raw = await trusted(start_ingest)
    assert await raw.cmd("MAIL FROM:<a b@example.com>") == BAD_ADDRESS
    assert await raw.cmd("MAIL FROM:<ceo@other.example@bench.example>") == BAD_ADDRESS
    assert (await raw.cmd("MAIL FROM:<app@example.com>"))[0] == 250
    for bad in ("<sp ace@d.test>", "<bob>", "<bob@-d.test>", "<a..b@d.test>", "<>", "<x@[1.2.3]>"):
        assert await raw.cmd(f"RCPT TO:{bad}") == BAD_ADDRESS, bad
    await raw.close()


async def test_quoted_literal_and_routed_addresses_are_accepted(start_ingest: StartIngest) -> None:
    ingest, raw = await trusted(start_ingest)
    assert (await raw.cmd("MAIL FROM:<@relay.example:app@example.com>"))[0] == 250
    for good in ('<"john smith"@dest.test>', '<"a\\"b"@dest.test>', "<u@[192.0.2.7]>"):
        assert (await raw.cmd(f"RCPT TO:{good}"))[0] == 250, good
    assert (await raw.cmd("DATA"))[0] == 354
    assert (await raw.cmd(MESSAGE + b"."))[0] == 250
    [sub] = await ingest.records(SUBMITTED, 1)
    assert sub.mail_from == "app@example.com"  # the source route is dropped (RFC 5321 C)
    assert sub.rcpt_to == ('"john smith"@dest.test', '"a\\"b"@dest.test', "u@[192.0.2.7]")
    await raw.close()


async def test_utf8_addresses_need_smtputf8(start_ingest: StartIngest) -> None:
    ingest, raw = await trusted(start_ingest)
    assert await raw.cmd("MAIL FROM:<jörg@example.com>") == (
        553,
        "5.6.7 Non-ASCII address requires SMTPUTF8",
    )
    assert (await raw.cmd("MAIL FROM:<app@example.com>"))[0] == 250
    assert (await raw.cmd("RCPT TO:<用户@例子.广告>"))[0] == 553
    assert (await raw.cmd("RSET"))[0] == 250
    assert (await raw.cmd("MAIL FROM:<jörg@example.com> SMTPUTF8"))[0] == 250
    assert (await raw.cmd("RCPT TO:<用户@例子.广告>"))[0] == 250
    assert (await raw.cmd(b"RCPT TO:<bad\xff@dest.test>")) == BAD_ADDRESS  # not UTF-8
    assert (await raw.cmd("DATA"))[0] == 354
    assert (await raw.cmd(MESSAGE + b"."))[0] == 250
    [sub] = await ingest.records(SUBMITTED, 1)
    assert sub.rcpt_to == ("用户@例子.广告",) and sub.smtputf8
    events = await ingest.events(3)
    assert sorted(e.check for e in events) == ["", "smtputf8", "smtputf8"]
    await raw.close()

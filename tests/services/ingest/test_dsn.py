"""The DSN extension (RFC 3461) at ingest, over a real socket: EHLO, the parameters' syntax
and replies, and what reaches the Submission."""

from __future__ import annotations

from shared.wire.records import RecipientDsn
from shared.wire.topics import SUBMITTED
from tests.services.ingest.client import Raw
from tests.services.ingest.conftest import Running, StartIngest

MESSAGE = b"From: app@example.com\r\nTo: x@dest.test\r\nSubject: hi\r\n\r\nHello.\r\n"


async def trusted(
    start_ingest: StartIngest, greeting: str = "EHLO client.test"
) -> tuple[Running, Raw, tuple[int, str]]:
    ingest = await start_ingest(trusted_networks=["127.0.0.0/8"])
    raw = await Raw.open(ingest.port("relay"))
    assert (await raw.reply())[0] == 220
    return ingest, raw, await raw.cmd(greeting)


async def test_ehlo_lists_dsn(start_ingest: StartIngest) -> None:
    _, raw, (code, text) = await trusted(start_ingest)
    assert code == 250
    assert "DSN" in text.split("\n")
    await raw.close()


async def test_bad_parameters_get_501_5_5_4(start_ingest: StartIngest) -> None:
    _, raw, _ = await trusted(start_ingest)
    for bad in ("RET=BODY", "ENVID=a+2b", "ENVID=" + "x" * 101, "RET=FULL RET=HDRS"):
        code, text = await raw.cmd(f"MAIL FROM:<app@example.com> {bad}")
        assert (code, text[:5]) == (501, "5.5.4"), bad
    assert (await raw.cmd("MAIL FROM:<app@example.com> RET=HDRS ENVID=QQ314159"))[0] == 250
    for bad in (
        "NOTIFY=NEVER,SUCCESS",
        "NOTIFY=ALWAYS",
        "NOTIFY=",
        "ORCPT=bob@dest.test",
        "ORCPT=rfc822;bad+zz",
        "ORCPT=rfc822;" + "a" * 500,
    ):
        code, text = await raw.cmd(f"RCPT TO:<bob@dest.test> {bad}")
        assert (code, text[:5]) == (501, "5.5.4"), bad
    # The longest values RFC 3461 allows fit on the command line.
    longest = "ORCPT=rfc822;" + "a" * 487 + " NOTIFY=SUCCESS,FAILURE,DELAY"
    assert (await raw.cmd(f"RCPT TO:<{'b' * 64}@dest.test> {longest}"))[0] == 250
    await raw.close()


async def test_a_parameter_on_the_wrong_command_is_not_recognized(
    start_ingest: StartIngest,
) -> None:
    _, raw, _ = await trusted(start_ingest)
    # RFC 3461 4: NOTIFY belongs to RCPT, RET to MAIL; elsewhere they are unknown (555).
    code, text = await raw.cmd("MAIL FROM:<app@example.com> NOTIFY=SUCCESS")
    assert (code, text[:5]) == (555, "5.5.4")
    assert (await raw.cmd("MAIL FROM:<app@example.com>"))[0] == 250
    code, text = await raw.cmd("RCPT TO:<bob@dest.test> RET=FULL")
    assert (code, text[:5]) == (555, "5.5.4")
    await raw.close()


async def test_helo_sessions_get_no_dsn_parameters(start_ingest: StartIngest) -> None:
    _, raw, (code, _) = await trusted(start_ingest, "HELO client.test")
    assert code == 250
    assert (await raw.cmd("MAIL FROM:<app@example.com> RET=HDRS"))[0] == 501
    await raw.close()


async def test_parameters_reach_the_submission(start_ingest: StartIngest) -> None:
    ingest, raw, _ = await trusted(start_ingest)
    assert (await raw.cmd("MAIL FROM:<app@example.com> ret=full ENVID=Id+2B7 SIZE=100"))[0] == 250
    rcpts = (
        "RCPT TO:<bob@dest.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Bob+2Bx@Dest.test",
        "RCPT TO:<carol@dest.test> notify=never",
        "RCPT TO:<dave@dest.test>",
    )
    for line in rcpts:
        assert (await raw.cmd(line))[0] == 250, line
    assert (await raw.cmd("DATA"))[0] == 354
    assert (await raw.cmd(MESSAGE + b"."))[0] == 250
    [sub] = await ingest.records(SUBMITTED, 1)
    assert (sub.dsn_ret, sub.dsn_envid) == ("FULL", "Id+7")  # xtext decoded, case kept
    assert sub.dsn == {
        "bob@dest.test": RecipientDsn(notify=("SUCCESS", "DELAY"), orcpt="rfc822;Bob+x@Dest.test"),
        "carol@dest.test": RecipientDsn(notify=("NEVER",)),
    }
    await raw.close()

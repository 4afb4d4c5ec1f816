"""Smaller ingest defects of issue 11 item 10, each over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import aiosmtplib
import pytest

from tests.services.ingest.client import Raw, until
from tests.services.ingest.conftest import Running, StartIngest
from tests.services.ingest.sessions import MESSAGE, logged_in

#: TLS 1.2 CBC suites the issue found offered (ECDHE and plain RSA key exchange).
CBC = "ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES128-SHA:AES128-SHA256"


@pytest.mark.parametrize(
    ("header", "reply"),
    [
        (b"From: ceo@other.example@example.com", "5.6.0 Message has no valid From header"),
        (b"From: <@other.example:alice@example.com>", "5.6.0 Message has no valid From header"),
        (b"From: alice@example.com\r\nSender: ceo@bank.test", "5.7.1 Sender header domain "),
        (b"From: alice@example.com\r\nSender: a@b@example.com", "5.6.0 Message has a malformed"),
    ],
)
async def test_from_and_sender_corner_cases_fail_anti_spoofing(
    start_ingest: StartIngest, header: bytes, reply: str
) -> None:
    ingest = await start_ingest()
    client = await logged_in(ingest)
    forged = MESSAGE.replace(b"From: alice@example.com", header)
    with pytest.raises(aiosmtplib.SMTPDataError) as info:
        await client.sendmail("alice@example.com", ["bob@dest.test"], forged)
    assert info.value.code == 550 and info.value.message.startswith(reply)
    good = MESSAGE.replace(b"From:", b"Sender: alice@example.com\r\nFrom:")
    await client.sendmail("alice@example.com", ["bob@dest.test"], good)  # still 250
    await client.quit()


async def test_control_character_in_a_header_name_is_refused(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.0/8"])
    raw = await Raw.open(ingest.port("relay"))
    await raw.reply()
    await raw.cmd("EHLO app.test")
    for bad in (b"Sub\x00ject: hi", b"X-A\x01: b", b"no colon here"):
        assert (await raw.cmd("MAIL FROM:<alice@example.com>"))[0] == 250
        assert (await raw.cmd("RCPT TO:<bob@dest.test>"))[0] == 250
        assert (await raw.cmd("DATA"))[0] == 354
        message = MESSAGE.replace(b"Subject: hi", bad)
        assert await raw.cmd(message + b".") == (550, "5.6.0 Message header is malformed"), bad
    await raw.close()


def tls12(ingest: Running, ciphers: str) -> ssl.SSLContext:
    context = ingest.pki.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    return context


async def test_tls12_offers_only_ecdhe_aead_suites(start_ingest: StartIngest) -> None:
    ingest = await start_ingest()
    with pytest.raises(OSError):  # ssl.SSLError or a reset: no suite in common
        await Raw.open(ingest.port("smtps"), tls=tls12(ingest, CBC))
    for aead in ("ECDHE+AESGCM", "ECDHE+CHACHA20"):
        raw = await Raw.open(ingest.port("smtps"), tls=tls12(ingest, aead))
        assert (await raw.reply())[0] == 220
        await raw.close()


async def test_failed_handshake_logs_one_warning(
    start_ingest: StartIngest, caplog: pytest.LogCaptureFixture
) -> None:
    ingest = await start_ingest()
    caplog.set_level(logging.DEBUG)
    raw = await Raw.open(ingest.port("submission"))
    await raw.reply()
    await raw.cmd("EHLO c.test")
    with pytest.raises(OSError):
        await raw.starttls(tls12(ingest, CBC))
    await raw.close()
    deadline = asyncio.get_running_loop().time() + 10
    while not [r for r in caplog.records if r.getMessage() == "TLS handshake failed"]:
        assert asyncio.get_running_loop().time() < deadline, "no warning logged"
        await asyncio.sleep(0.01)
    ours = [r for r in caplog.records if r.name.startswith("postline")]
    assert [(r.levelname, r.getMessage()) for r in ours if r.levelno >= logging.WARNING] == [
        ("WARNING", "TLS handshake failed")
    ]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_ehlo_reply_is_written_at_once(start_ingest: StartIngest) -> None:
    ingest = await start_ingest()
    raw = await Raw.open(ingest.port("relay"))
    await raw.reply()
    [session] = ingest.stage.core.sessions
    writes: list[bytes] = []
    write = session._writer.write

    def counting(data: bytes) -> None:
        writes.append(bytes(data))
        write(data)

    session._writer.write = counting
    code, text = await raw.cmd("EHLO c.test")
    assert code == 250 and len(text.splitlines()) > 5
    assert len(writes) == 1 and writes[0].count(b"\r\n") == len(text.splitlines())
    await raw.close()


async def test_session_mid_data_gets_421_when_the_drain_is_cut_short(
    start_ingest: StartIngest,
) -> None:
    # In ``postline run`` ingest stops last, and the runtime cancels it when the process's
    # drain deadline, shared with the other stages, runs out before ingest's own grace.
    ingest = await start_ingest(trusted_networks=["127.0.0.0/8"], drain_timeout="30s")
    raw = await Raw.open(ingest.port("relay"))
    await raw.reply()
    await raw.cmd("EHLO app.test")
    await raw.cmd("MAIL FROM:<alice@example.com>")
    await raw.cmd("RCPT TO:<bob@dest.test>")
    assert (await raw.cmd("DATA"))[0] == 354
    await raw.send(MESSAGE)  # and not the final "."
    [session] = ingest.stage.core.sessions
    ingest.ctx.stopping.set()
    await until(lambda: session.draining)
    ingest.task.cancel()
    assert await raw.reply() == (421, "4.3.2 Service shutting down, try again later")
    with contextlib.suppress(asyncio.CancelledError):
        await ingest.task
    await raw.close()


def test_port_in_use_is_one_line_naming_the_key(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "postline.toml"
        config.write_text(
            f'[embedded]\npath = "{tmp_path / "bus.db"}"\n[http]\nport = 0\n'
            f'[ingest]\n[[ingest.listeners]]\nname = "relay"\nport = {port}\nmode = "relay"\n'
        )
        done = subprocess.run(
            [str(Path(sys.executable).parent / "postline"), "--config", str(config), "ingest"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if "ingest.listeners[0].port" in line]
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0], done.stderr

"""AUTH throttling per address and per credential over real sockets (issue 11 item 8)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import time

import pytest

from services.ingest.authcli import run_unblock
from tests.services.ingest.client import Raw
from tests.services.ingest.conftest import PASSWORD, Running, StartIngest

THROTTLED = (421, "4.7.0 Too many authentication failures")


def plain(user: str, password: str) -> str:
    return "AUTH PLAIN " + base64.b64encode(f"\0{user}\0{password}".encode()).decode()


async def smtps(ingest: Running, source: str = "127.0.0.1") -> Raw:
    raw = await Raw.open(ingest.port("smtps"), tls=ingest.pki.client_context(), source=source)
    assert (await raw.reply())[0] == 220
    assert (await raw.cmd("EHLO client.test"))[0] == 250
    return raw


async def test_trusted_host_is_not_locked_out_by_one_bad_app(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.0/8"], limits={"auth_failures": 3})
    raw = await smtps(ingest)
    for _ in range(2):
        assert (await raw.cmd(plain("bob", "stale password")))[0] == 535
    assert await raw.cmd(plain("bob", "stale password")) == THROTTLED
    await raw.close()
    # bob is locked from this address, even with the right password ...
    raw = await smtps(ingest)
    assert await raw.cmd(plain("bob", PASSWORD)) == THROTTLED
    await raw.close()
    # ... but the host is not: alice on the same host, and the relay port, still work.
    raw = await smtps(ingest)
    assert (await raw.cmd(plain("alice", PASSWORD)))[0] == 235
    await raw.close()
    relay = await Raw.open(ingest.port("relay"))
    assert (await relay.reply())[0] == 220
    await relay.close()


async def test_one_user_guessed_from_many_addresses(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(limits={"auth_failures": 100, "auth_failures_per_user": 4})
    raw = await smtps(ingest, "127.0.0.1")  # alice's usual address
    assert (await raw.cmd(plain("alice", PASSWORD)))[0] == 235
    await raw.close()
    for n in range(2, 6):  # four guesses, each from another address
        raw = await smtps(ingest, f"127.0.0.{n}")
        reply = await raw.cmd(plain("alice", "guess"))
        assert reply == (THROTTLED if n == 5 else (535, "5.7.8 Authentication credentials invalid"))
        await raw.close()
    raw = await smtps(ingest, "127.0.0.9")  # a new address: refused, even the right password
    assert await raw.cmd(plain("alice", PASSWORD)) == THROTTLED
    await raw.close()
    raw = await smtps(ingest, "127.0.0.1")  # where alice authenticated before: still works
    assert (await raw.cmd(plain("alice", PASSWORD)))[0] == 235
    await raw.close()
    raw = await smtps(ingest, "127.0.0.9")  # and other users are not affected
    assert (await raw.cmd(plain("bob", PASSWORD)))[0] == 235
    await raw.close()


async def auth_code(ingest: Running, user: str, password: str) -> int:
    """The reply code an AUTH attempt ends with on a new connection: 421 at the greeting when
    the address is locked, else the AUTH reply's."""
    raw = await Raw.open(ingest.port("smtps"), tls=ingest.pki.client_context())
    try:
        code, _ = await raw.reply()
        if code != 220:
            return code
        assert (await raw.cmd("EHLO client.test"))[0] == 250
        return (await raw.cmd(plain(user, password)))[0]
    finally:
        await raw.close()


@pytest.mark.parametrize(
    ("target", "trusted"),
    [("127.0.0.1", []), ("bob", ["127.0.0.0/8"])],  # the address's lock; the user's on a
    ids=["address", "user"],  # trusted host, where only the user is locked
)
async def test_postline_auth_unblock_lifts_the_lock_on_the_running_ingest(
    start_ingest: StartIngest, target: str, trusted: list[str]
) -> None:
    ingest = await start_ingest(trusted_networks=trusted, limits={"auth_failures": 2})
    raw = await smtps(ingest)
    assert (await raw.cmd(plain("bob", "wrong")))[0] == 535
    assert await raw.cmd(plain("bob", "wrong")) == THROTTLED
    await raw.close()
    assert await auth_code(ingest, "bob", PASSWORD) == 421  # even the right password

    # The operator's command, as the CLI runs it: a client of the same bus publishes the
    # action on postline.control, which the running ingest follows.
    assert await run_unblock(argparse.Namespace(target=target), ingest.ctx.config) == 0
    deadline = time.monotonic() + 10
    while (code := await auth_code(ingest, "bob", PASSWORD)) != 235:
        assert code == 421 and time.monotonic() < deadline, code
        await asyncio.sleep(0.1)

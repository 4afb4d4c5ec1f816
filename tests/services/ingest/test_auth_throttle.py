"""AUTH throttling per address and per credential over real sockets (issue 11 item 8)."""

from __future__ import annotations

import base64

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

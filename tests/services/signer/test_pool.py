"""The signing pool: worker processes hold their own parsed keys and follow key changes."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.signer.keys import KeyStore
from services.signer.pool import KeyRef, SigningPool, SignJob, sign_jobs, usable_cpus
from shared.errors import StageError
from testing.dnsserver import DnsServer
from tests.services.signer.conftest import DOMAIN, add_key, dns_records, verify

MESSAGE = b"From: a@example.test\r\nTo: b@dest.test\r\nSubject: pool\r\n\r\nbody\r\n"


@pytest.fixture
def pool(store: KeyStore) -> Iterator[SigningPool]:
    signing = SigningPool(store, workers=2)
    signing.start()
    yield signing
    signing.close()


def jobs(store: KeyStore, count: int, data: bytes = MESSAGE) -> list[SignJob]:
    refs = tuple(KeyRef.of(k) for k in store.signing_keys(DOMAIN, time.time()))
    return [SignJob(data, refs, int(time.time())) for _ in range(count)]


def test_usable_cpus_is_positive() -> None:
    assert 1 <= usable_cpus() <= len(__import__("os").sched_getaffinity(0))


async def test_workers_sign_in_order_and_signatures_verify(
    pool: SigningPool, store: KeyStore
) -> None:
    batch = jobs(store, 7) + jobs(store, 1, b"To: nofrom@x.test\r\n\r\nbody\r\n")
    outcomes = await pool.sign(batch)
    assert len(outcomes) == 8
    assert all(o.header.count(b"DKIM-Signature:") == 2 for o in outcomes[:7])
    assert outcomes[7].error == "message has no From header field"
    async with DnsServer(dns_records(store)) as dns:
        for outcome in outcomes[:7]:
            assert await verify(outcome.header + MESSAGE, dns.port, 0)
            assert await verify(outcome.header + MESSAGE, dns.port, 1)


async def test_workers_pick_up_new_keys(pool: SigningPool, store: KeyStore, keys_dir: Path) -> None:
    await pool.sign(jobs(store, 2))  # workers started with the original keys
    add_key(keys_dir, "second.test", "s1", "ed25519")
    assert store.refresh()
    ref = KeyRef("second.test", "s1", "ed25519")
    outcomes = await pool.sign([SignJob(MESSAGE, (ref,), int(time.time()))] * 4)
    assert all(b"d=second.test" in o.header for o in outcomes)
    async with DnsServer(dns_records(store)) as dns:
        assert await verify(outcomes[0].header + MESSAGE, dns.port)


async def test_in_process_signing(store: KeyStore) -> None:
    single = SigningPool(store, workers=1)
    single.start()
    outcomes = await single.sign(jobs(store, 2))
    assert all(o.header and o.seconds > 0 for o in outcomes)
    assert await single.sign([]) == []
    single.close()


def test_missing_key_is_a_stage_error(store: KeyStore) -> None:
    with pytest.raises(StageError, match="not loaded"):
        sign_jobs(store, [SignJob(MESSAGE, (KeyRef("nope.test", "x", "rsa"),), 1)])


def running(pids: list[int]) -> list[int]:
    """The PIDs that still exist."""
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


async def test_workers_exit_when_the_stage_is_killed(keys_dir: Path) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("pool_child.py")),
        str(keys_dir),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == -signal.SIGKILL
    workers = [int(pid) for pid in out.split()]
    assert workers
    loop = asyncio.get_running_loop()
    end = loop.time() + 15
    while alive := running(workers):
        assert loop.time() < end, f"orphaned signing workers still running: {alive}"
        await asyncio.sleep(0.1)

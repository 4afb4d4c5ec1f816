"""A stage-like process for the orphan test: start a signing pool, sign, print the worker
PIDs, then SIGKILL itself (so the pool is never shut down).

Run as a script: ``python pool_child.py KEYS_DIR`` (it puts the repository root on
``sys.path`` itself).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from services.signer.keys import KeyStore
from services.signer.pool import KeyRef, SigningPool, SignJob

MESSAGE = b"From: a@example.test\r\n\r\nbody\r\n"


def children() -> list[int]:
    """PIDs of this process's children that are pool workers (not the resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


async def main(directory: Path) -> None:
    """Sign on two workers, report them, die without cleaning up."""
    store = KeyStore(directory)
    store.load()
    pool = SigningPool(store, workers=2)
    pool.start()
    key = store.signing_keys("example.test", time.time())[0]
    await pool.sign([SignJob(MESSAGE, (KeyRef.of(key),), 1)] * 20)
    print(" ".join(str(pid) for pid in children()), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))

"""A ``postline run`` spread over processes, as real processes: what happens when one dies.

The normal life (start, deliver, answer for the stage processes, stop them) is the end-to-end
test of ``postline run`` in tests/shared/cli/test_run.py; here: a stage process that dies
stops the run, a run that dies takes its stage processes with it, and a wrong
``runtime.separate_processes`` is refused naming the key.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.shared.cli.test_run import (
    DEADLINE,
    EPHEMERAL,
    Logs,
    alive,
    clean_env,
    start_run,
    wait_ready,
)

pytestmark = pytest.mark.slow


@dataclass
class Run:
    process: asyncio.subprocess.Process
    logs: Logs


@pytest.fixture
async def run(tmp_path: Path, rspamd_url: str) -> AsyncIterator[Run]:
    """``postline run`` on the dev config, ready, with its two stage processes."""
    env = clean_env(EPHEMERAL | {"POSTLINE__INGEST__SCANNING__URL": rspamd_url})
    proc = await start_run(tmp_path, env)
    assert proc.stderr is not None
    logs = Logs(proc.stderr)
    reader = asyncio.create_task(logs.read())
    try:
        await asyncio.wait_for(logs.found.wait(), DEADLINE)
        await wait_ready(logs.ports["http"])
        yield Run(proc, logs)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for pid in logs.children.values():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        await asyncio.wait_for(reader, DEADLINE)


async def gone(pids: list[int]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while running := [pid for pid in pids if alive(pid)]:
        assert loop.time() < deadline, f"still running: {running}"
        await asyncio.sleep(0.05)


async def test_a_stage_process_that_dies_stops_the_run(run: Run) -> None:
    os.kill(run.logs.children["signer"], signal.SIGKILL)
    code = await asyncio.wait_for(run.process.wait(), DEADLINE)
    assert code == 1, "\n".join(run.logs.lines)
    assert not alive(run.logs.children["deliverer"])  # the run stopped the other one
    said = "\n".join(run.logs.lines)
    assert "a stage process exited" in said and "stage process failed" in said


async def test_a_run_that_dies_takes_its_stage_processes_with_it(run: Run) -> None:
    # SIGKILL leaves the run no chance to stop anything: the children see their stdin end.
    run.process.kill()
    await run.process.wait()
    await gone(list(run.logs.children.values()))


async def test_an_unknown_stage_in_separate_processes_names_the_key(tmp_path: Path) -> None:
    env = clean_env(EPHEMERAL | {"POSTLINE__RUNTIME__SEPARATE_PROCESSES": '["signer", "sigenr"]'})
    proc = await start_run(tmp_path, env)
    out, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode == 1
    assert "runtime.separate_processes" in err.decode() and "'sigenr'" in err.decode()
    assert b"swaks" not in out  # refused before the banner

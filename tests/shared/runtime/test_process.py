"""run_stages with tiny stages defined here: readiness, SIGTERM drain, crashes, SIGHUP."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from shared.bus.embedded import EmbeddedBus
from shared.config import Config, load_config
from shared.runtime.process import run_stages
from shared.runtime.spec import StageSpec
from shared.runtime.stage import Stage, StageContext

DEADLINE = 10.0


class DrainingStage:
    """Holds one unit of in-flight work until the test releases it; drains on stop."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.working = asyncio.Event()
        self.finished = False
        self.reloads = 0

    async def run(self, ctx: StageContext) -> None:
        ctx.reload_hooks.append(self.reload)
        work = asyncio.create_task(self._work(ctx))
        ctx.set_ready()
        await ctx.stopping.wait()
        await ctx.wait_idle(DEADLINE)
        await work

    async def _work(self, ctx: StageContext) -> None:
        async with ctx.activity():
            self.working.set()
            await self.release.wait()
            self.finished = True

    def reload(self) -> None:
        self.reloads += 1


class CrashingStage:
    async def run(self, ctx: StageContext) -> None:
        ctx.set_ready()
        raise RuntimeError("stage bug")


def spec_for(stage: Stage, name: str = "fake", order: int = 0) -> StageSpec:
    async def create(_ctx: StageContext) -> Stage:
        return stage

    return StageSpec(name=name, help="a test stage", create=create, order=order)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "postline.toml"
    path.write_text(
        f'[http]\nport = 0\n[runtime]\ndrain_timeout = "10s"\n'
        f'[embedded]\npath = "{tmp_path / "bus.db"}"\n'
    )
    return load_config(path, environ={})


@pytest.fixture
async def bus(config: Config) -> AsyncIterator[EmbeddedBus]:
    yield EmbeddedBus(config.core.embedded)


async def until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` until true, failing after the deadline."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not predicate():
        assert loop.time() < end, "condition not reached before the deadline"
        await asyncio.sleep(0.01)


async def http_port(caplog: pytest.LogCaptureFixture) -> int:
    def bound() -> bool:
        return any(r.getMessage() == "http listening" for r in caplog.records)

    await until(bound)
    record = next(r for r in caplog.records if r.getMessage() == "http listening")
    return int(record.__dict__["port"])


async def get_status(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return int(data.split(b" ", 2)[1])


async def status_becomes(port: int, path: str, status: int) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while await get_status(port, path) != status:
        assert loop.time() < end, f"{path} never answered {status}"
        await asyncio.sleep(0.01)


async def test_sigterm_drains_in_flight_work_then_exits_0(
    config: Config, bus: EmbeddedBus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stage = DrainingStage()
    run = asyncio.create_task(
        run_stages([spec_for(stage)], config, bus=bus, configure_logging=False)
    )
    port = await http_port(caplog)
    await status_becomes(port, "/readyz", 200)
    await stage.working.wait()

    os.kill(os.getpid(), signal.SIGTERM)
    await status_becomes(port, "/readyz", 503)  # stopping: no longer ready, still draining
    assert not run.done() and not stage.finished

    stage.release.set()
    assert await asyncio.wait_for(run, DEADLINE) == 0
    assert stage.finished


async def test_sighup_runs_reload_hooks(
    config: Config, bus: EmbeddedBus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stage = DrainingStage()
    stop = asyncio.Event()
    run = asyncio.create_task(
        run_stages([spec_for(stage)], config, bus=bus, stop=stop, configure_logging=False)
    )
    port = await http_port(caplog)
    await status_becomes(port, "/readyz", 200)
    os.kill(os.getpid(), signal.SIGHUP)
    await until(lambda: stage.reloads == 1)
    stage.release.set()
    stop.set()
    assert await asyncio.wait_for(run, DEADLINE) == 0


async def test_crashed_stage_stops_the_process_non_zero(
    config: Config, bus: EmbeddedBus, caplog: pytest.LogCaptureFixture
) -> None:
    other = DrainingStage()
    other.release.set()
    specs = [spec_for(CrashingStage(), "crashy", 1), spec_for(other, "steady", 0)]
    code = await asyncio.wait_for(
        run_stages(specs, config, bus=bus, configure_logging=False), DEADLINE
    )
    assert code == 1
    assert other.finished  # the healthy stage was drained, not abandoned
    assert any(r.getMessage() == "stage crashed" and r.exc_info for r in caplog.records)


async def test_drain_timeout_cancels_and_exits_non_zero(tmp_path: Path, bus: EmbeddedBus) -> None:
    path = tmp_path / "short.toml"
    path.write_text('[http]\nport = 0\n[runtime]\ndrain_timeout = "50ms"\n')
    stage = DrainingStage()  # never released: its work outlives the drain
    stop = asyncio.Event()
    stop.set()
    code = await asyncio.wait_for(
        run_stages(
            [spec_for(stage)], load_config(path, {}), bus=bus, stop=stop, configure_logging=False
        ),
        DEADLINE,
    )
    assert code == 1
    assert not stage.finished
    stage.release.set()  # let the abandoned work task end with the test


async def test_no_stage_is_an_error(config: Config, bus: EmbeddedBus) -> None:
    assert await run_stages([], config, bus=bus, configure_logging=False) == 2


async def test_http_port_in_use_fails_cleanly(tmp_path: Path, bus: EmbeddedBus) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        path = tmp_path / "busy.toml"
        path.write_text(f"[http]\nport = {taken.getsockname()[1]}\n")
        stage = DrainingStage()
        code = await asyncio.wait_for(
            run_stages([spec_for(stage)], load_config(path, {}), bus=bus, configure_logging=False),
            DEADLINE,
        )
    assert code == 1
    assert not stage.working.is_set()  # no stage started without its HTTP port


class SpawningStage:
    """Starts one supervised background task that dies when the test says so."""

    def __init__(self) -> None:
        self.die = asyncio.Event()
        self.ctx: StageContext | None = None

    async def run(self, ctx: StageContext) -> None:
        self.ctx = ctx
        ctx.spawn(self._helper(), name="helper")
        ctx.set_ready()
        await ctx.stopping.wait()

    async def _helper(self) -> None:
        await self.die.wait()
        raise RuntimeError("helper bug")


def with_task_failure(tmp_path: Path, policy: str) -> Config:
    path = tmp_path / f"{policy}.toml"
    path.write_text(
        f'[http]\nport = 0\n[runtime]\ndrain_timeout = "5s"\ntask_failure = "{policy}"\n'
    )
    return load_config(path, {})


async def test_dead_background_task_stops_the_process_non_zero(
    tmp_path: Path, bus: EmbeddedBus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stage = SpawningStage()
    config = with_task_failure(tmp_path, "exit")
    run = asyncio.create_task(
        run_stages([spec_for(stage)], config, bus=bus, configure_logging=False)
    )
    port = await http_port(caplog)
    await status_becomes(port, "/readyz", 200)
    stage.die.set()
    assert await asyncio.wait_for(run, DEADLINE) == 1
    died = [r for r in caplog.records if r.getMessage() == "background task died"]
    assert died and died[0].exc_info and died[0].__dict__["task"] == "helper"
    assert stage.ctx is not None
    assert (
        stage.ctx.registry.get_sample_value(
            "postline_task_failures_total", {"stage": "fake", "task": "helper"}
        )
        == 1
    )


async def test_dead_background_task_fails_readiness_when_told_to_stay_up(
    tmp_path: Path, bus: EmbeddedBus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stage = SpawningStage()
    stop = asyncio.Event()
    config = with_task_failure(tmp_path, "unready")
    run = asyncio.create_task(
        run_stages([spec_for(stage)], config, bus=bus, stop=stop, configure_logging=False)
    )
    port = await http_port(caplog)
    await status_becomes(port, "/readyz", 200)
    stage.die.set()
    await status_becomes(port, "/readyz", 503)
    assert await get_status(port, "/healthz") == 200  # alive, not ready: no restart asked
    assert not run.done()
    stop.set()
    assert await asyncio.wait_for(run, DEADLINE) == 0

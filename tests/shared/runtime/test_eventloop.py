"""The event loop a stage process runs on: uvloop by default, asyncio when configured."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from shared.config import load_config
from shared.errors import ConfigError
from shared.runtime import eventloop


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_uvloop_runs_the_coroutine_on_a_uvloop_loop() -> None:
    assert isinstance(eventloop.run(_running_loop(), "uvloop"), uvloop.Loop)


def test_asyncio_runs_the_coroutine_on_the_standard_loop() -> None:
    loop = eventloop.run(_running_loop(), "asyncio")
    assert not isinstance(loop, uvloop.Loop)
    assert isinstance(loop, asyncio.BaseEventLoop)


def test_the_loop_is_closed_afterwards_and_the_result_returned() -> None:
    async def answer() -> tuple[int, asyncio.AbstractEventLoop]:
        await asyncio.sleep(0)
        return 42, asyncio.get_running_loop()

    value, loop = eventloop.run(answer(), "uvloop")
    assert value == 42
    assert loop.is_closed()


def test_stages_run_on_uvloop_unless_configured_otherwise(tmp_path) -> None:
    assert load_config(None, {}).core.runtime.event_loop == "uvloop"
    path = tmp_path / "postline.toml"
    path.write_text('[runtime]\nevent_loop = "asyncio"\n')
    assert load_config(path, {}).core.runtime.event_loop == "asyncio"


def test_an_unknown_event_loop_names_the_key_and_the_file(tmp_path) -> None:
    path = tmp_path / "postline.toml"
    path.write_text('[runtime]\nevent_loop = "tokio"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert "event_loop" in str(caught.value)
    assert str(path) in str(caught.value)

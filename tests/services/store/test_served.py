"""The stage serves its query API: the events it stored, to the admin token, over real HTTP."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.bus.base import Bus
from shared.errors import ConfigError
from shared.wire.records import Event, EventKind
from testing.buses import bus_of_kind
from testing.store import AT, store_database
from testing.storestage import publish, start_store, until

MESSAGE = "0f" * 16


@pytest.fixture
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    opened = bus_of_kind("embedded", request, tmp_path, "store-api", partitions=1)
    await opened.start()
    yield opened
    await opened.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(port: int, path: str, token: str) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_the_stage_answers_queries_on_its_api_port(bus: Bus, tmp_path: Path) -> None:
    token_file = tmp_path / "admin.token"
    token_file.write_text("an-admin-token-of-enough-length-0123456789\n")
    port = free_port()
    await publish(
        bus,
        [
            Event(kind=EventKind.ACCEPTED, message_id=MESSAGE, at=AT, tenant="acme", recipients=1),
            Event(
                kind=EventKind.DELIVERED,
                message_id=MESSAGE,
                at=AT + 2,
                tenant="acme",
                recipient="r@example.net",
            ),
        ],
    )
    running = await start_store(
        bus, tmp_path, f'api_port = {port}\nadmin_token_file = "{token_file}"'
    )
    try:
        async with store_database(f"sqlite://{tmp_path / 'data' / 'store.sqlite3'}") as db:
            await until(lambda: _stored(db, 2), "both events stored")
        token = "an-admin-token-of-enough-length-0123456789"
        status, body = await _in_thread(get, port, f"/v1/messages/{MESSAGE[:12]}", token)
        assert status == 200, body
        kinds = [e["kind"] for e in body["events"]]  # type: ignore[index,union-attr]
        assert kinds == ["accepted", "delivered"]
        status, body = await _in_thread(get, port, f"/v1/messages/{MESSAGE[:12]}", "wrong-token")
        assert status == 401
    finally:
        await running.stop()


async def test_a_missing_admin_token_file_fails_the_start(bus: Bus, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"store\.admin_token_file"):
        await start_store(
            bus, tmp_path, f'api_port = {free_port()}\nadmin_token_file = "{tmp_path}/none"'
        )


async def _stored(db, events: int) -> bool:  # type: ignore[no-untyped-def]
    return int(await db.fetchval("SELECT count(*) FROM events")) >= events


async def _in_thread(fn, *args):  # type: ignore[no-untyped-def]
    import asyncio  # noqa: PLC0415

    return await asyncio.to_thread(fn, *args)

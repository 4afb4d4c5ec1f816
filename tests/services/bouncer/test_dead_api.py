"""The dead-letter admin API over a real socket: a running bouncer (embedded bus), an aiohttp
client; the bouncer counts the actions from their audit events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from shared.wire.records import ClientInfo, Submission
from shared.wire.topics import DEAD, SUBMITTED
from testing.deadletters import dead_submission
from tests.services.bouncer.conftest import ADMIN_TOKEN, Running

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
GARBAGE = b"\xc1 not msgpack"
SUB = Submission(
    id="0123456789abcdef0123456789abcdef",
    received_at=1.0,
    client=ClientInfo(ip="192.0.2.1"),
    mail_from="a@shop.test",
    rcpt_to=("b@dest.test",),
    data=b"Subject: x\r\n\r\nhi\r\n",
)


class Api:
    """Requests to the admin listener; each answers (status, decoded JSON)."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(self, method: str, path: str = "", body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, self.base + path, json=body) as response:
            return response.status, await response.json()


@pytest.fixture
async def api(running: Running) -> AsyncIterator[Api]:
    await running.bus.publish(
        [
            DEAD.out(dead_submission(SUBMITTED.encode(SUB), "failed: RuntimeError: no key")),
            DEAD.out(dead_submission(GARBAGE, "decode: not a Submission")),
        ]
    )
    async with aiohttp.ClientSession(headers=AUTH) as session:
        yield Api(session, f"http://127.0.0.1:{running.admin_port}/admin/dead")


async def test_list_show_redrive_purge(api: Api, running: Running) -> None:
    status, listed = await api.call("GET")
    assert status == 200
    assert [(e["offset"], e["state"], e["reason"]) for e in listed] == [
        (0, "dead", "failed: RuntimeError: no key"),
        (1, "dead", "decode: not a Submission"),
    ]
    status, shown = await api.call("GET", "/0")
    assert status == 200 and shown["value"]["id"] == SUB.id
    status, shown = await api.call("GET", "/1")
    assert status == 200 and shown["value_hex"].startswith("00000000  c1 20 6e 6f 74")
    assert "cannot decode Submission" in shown["decode_error"]

    status, done = await api.call("POST", "/redrive", {"all": True})
    assert status == 200 and (done["done"], done["left"]) == (1, 1)
    refused = next(r for r in done["results"] if not r["done"])
    assert refused["offset"] == 1 and refused["why"].startswith("not redriven: postline.submitted")
    republished = [m async for m in running.bus.read_to_end(SUBMITTED.name)]
    assert [SUBMITTED.decode(m.value or b"").id for m in republished] == [SUB.id]

    status, done = await api.call("POST", "/purge", {"offsets": [1], "why": "junk"})
    assert status == 200 and done["done"] == 1
    assert (await api.call("GET"))[1] == []
    status, every = await api.call("GET", "?all=1")
    assert [(e["state"], e["state_by"].split(":")[0]) for e in every] == [
        ("redriven", "api"),
        ("purged", "api"),
    ]
    await wait_counted(running, "redriven", 1)
    await wait_counted(running, "purged", 1)
    await wait_counted(running, "redrive_refused", 1)


async def test_bad_input_is_a_clear_error(api: Api) -> None:
    assert (await api.call("GET", "/99"))[0] == 404
    assert (await api.call("GET", "/nope"))[0] == 404
    status, body = await api.call("POST", "/redrive", {})
    assert status == 400 and "name offsets" in body["error"]
    status, body = await api.call("POST", "/redrive", {"offsets": [0], "topic": "x"})
    assert status == 400 and "not both" in body["error"]
    status, body = await api.call("POST", "/purge", {"everything": True})
    assert status == 400 and "everything" in body["error"]
    status, body = await api.call("POST", "/purge", {"older_than": "soon"})
    assert status == 400 and "duration" in body["error"]
    status, body = await api.call("POST", "/redrive", {"offsets": [7]})
    assert status == 404 and "offset 7" in body["error"]
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(api.base) as response,
    ):
        assert response.status == 401


async def wait_counted(running: Running, action: str, value: float) -> None:
    deadline = time.monotonic() + 10
    name = "postline_dead_letter_actions_total"
    while running.ctx.registry.get_sample_value(name, {"action": action}) != value:
        if time.monotonic() > deadline:
            raise AssertionError(f"{action}: {running.ctx.registry.get_sample_value(name)}")
        await asyncio.sleep(0.05)

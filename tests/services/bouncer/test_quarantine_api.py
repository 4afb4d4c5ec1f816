"""The quarantine admin API over a real socket: a running bouncer (embedded bus), an aiohttp
client; the bouncer counts the actions from their audit events and gauges what is held."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from shared.quarantine import entry_record
from shared.wire.records import EventKind
from shared.wire.topics import EVENTS, SUBMITTED
from testing.quarantine import quarantined
from tests.services.bouncer.conftest import ADMIN_TOKEN, Running

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SPAM = quarantined("0123456789abcdef0123456789abcdef")
PHISH = quarantined("0123456789abcdef9999999999999999", tenant="acme")


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
    await running.bus.publish([entry_record(SPAM), entry_record(PHISH)])
    async with aiohttp.ClientSession(headers=AUTH) as session:
        yield Api(session, f"http://127.0.0.1:{running.admin_port}/admin/quarantine")


async def test_list_show_release_delete(api: Api, running: Running) -> None:
    await wait_sample(running, "postline_quarantine_messages", {}, 2)
    status, listed = await api.call("GET")
    assert status == 200
    assert [(e["id"], e["tenant"], e["score"]) for e in listed] == [
        (SPAM.submission.id, "shop", 9.5),
        (PHISH.submission.id, "acme", 9.5),
    ]
    status, listed = await api.call("GET", "?tenant=acme")
    assert [e["id"] for e in listed] == [PHISH.submission.id]
    status, shown = await api.call("GET", "/0123456789abcdef0")
    assert status == 200 and shown["rcpt_to"] == ["b@dest.test", "c@dest.test"]
    assert shown["symbols"]["BAYES_SPAM"] == 5.1

    status, done = await api.call("POST", f"/{SPAM.submission.id}/release", {"why": "ham"})
    assert status == 200 and (done["done"], done["left"]) == (1, 0)
    sent = [SUBMITTED.decode(m.value or b"") async for m in running.bus.read_to_end(SUBMITTED.name)]
    assert [s.id for s in sent] == [SPAM.submission.id]
    status, again = await api.call("POST", f"/{SPAM.submission.id}/release")
    assert status == 404 and "already released or deleted" in again["error"]
    assert len([m async for m in running.bus.read_to_end(SUBMITTED.name)]) == 1

    status, done = await api.call("POST", "/0123456789abcdef9/delete")  # no body: no reason
    assert status == 200 and done["results"] == [
        {"id": PHISH.submission.id, "done": True, "why": "deleted"}
    ]
    assert (await api.call("GET"))[1] == []
    events = [EVENTS.decode(m.value or b"") async for m in running.bus.read_to_end(EVENTS.name)]
    audit = sorted(
        (e.classification, e.by.split(":")[0], e.detail)
        for e in events
        if e.kind is EventKind.QUARANTINE
    )
    assert audit == [("deleted", "api", ""), ("released", "api", "ham")]
    await wait_sample(running, "postline_quarantine_actions_total", {"action": "released"}, 1)
    await wait_sample(running, "postline_quarantine_actions_total", {"action": "deleted"}, 1)
    await wait_sample(running, "postline_quarantine_messages", {}, 0)


async def test_bad_input_is_a_clear_error(api: Api) -> None:
    status, body = await api.call("GET", "/0123456789ab")
    assert status == 400 and "ambiguous" in body["error"]
    status, body = await api.call("GET", "/abc")
    assert status == 400 and "at least 6 characters" in body["error"]
    assert (await api.call("GET", "/ffffffffffff"))[0] == 404
    assert (await api.call("POST", f"/{SPAM.submission.id}/send"))[0] == 404
    assert (await api.call("POST", "/release"))[0] == 404
    status, body = await api.call("POST", f"/{SPAM.submission.id}/delete", {"reason": "x"})
    assert status == 400 and "reason" in body["error"]
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(api.base) as response,
    ):
        assert response.status == 401


async def wait_sample(running: Running, name: str, labels: dict[str, str], value: float) -> None:
    deadline = time.monotonic() + 10
    while running.ctx.registry.get_sample_value(name, labels) != value:
        if time.monotonic() > deadline:
            found = running.ctx.registry.get_sample_value(name, labels)
            raise AssertionError(f"{name}{labels}: {found}, expected {value}")
        await asyncio.sleep(0.05)

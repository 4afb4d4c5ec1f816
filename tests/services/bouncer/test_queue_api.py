"""The queue admin API over a real socket (a running bouncer, an aiohttp client) on a queue
written to the bus as a deliverer would: inspection, actions with their audit events, and
every bad request refused with the reason (400) or as unknown (404)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from shared.queue.actions import read_actions
from shared.wire.records import ControlVerb, Delivery, EventKind, QueueEntry, SmtpReply, now
from shared.wire.topics import CONTROL, EVENTS, OUTBOUND, QUEUE
from testing.topics import read_all
from tests.services.bouncer.conftest import ADMIN_TOKEN, Running

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DATA = b"Subject: queued\r\nFrom: app@shop.test\r\n\r\nhello\r\n"


class Api:
    """Requests to the admin listener; each answers (status, decoded JSON)."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, self.base + path, json=body) as response:
            return response.status, await response.json()

    async def raw(self, path: str, data: bytes) -> tuple[int, Any]:
        async with self.session.post(self.base + path, data=data) as response:
            return response.status, await response.json()


@pytest.fixture
async def api(running: Running) -> AsyncIterator[Api]:
    await queued(running)
    async with aiohttp.ClientSession(headers=AUTH) as session:
        yield Api(session, f"http://127.0.0.1:{running.admin_port}/admin/queue")


async def queued(running: Running) -> None:
    """One deferred message to a.test, its data on the outbound lane where the entry says."""
    delivery = Delivery(
        message_id="4f3c2a1b00",
        delivery_id="d-1",
        domain="a.test",
        mail_from="",
        rcpt_to=("x@a.test",),
        data=DATA,
        sender="app@shop.test",
        tenant="shop",
        submitted_at=now() - 600,
    )
    await running.bus.publish([OUTBOUND.out(delivery)])
    (lane,) = await read_all(running.bus, OUTBOUND.name)
    entry = QueueEntry(
        message_id=delivery.message_id,
        delivery_id=delivery.delivery_id,
        domain="a.test",
        recipients=delivery.rcpt_to,
        at=now(),
        sender=delivery.sender,
        tenant="shop",
        submitted_at=delivery.submitted_at,
        attempt=1,
        next_attempt=now() + 3600,
        tier="postline.retry.1h",
        reason="deferred",
        last_reply=SmtpReply(code=451, enhanced="4.3.0", text="try later"),
        copy_topic=lane.topic,
        copy_partition=lane.partition,
        copy_offset=lane.offset,
    )
    await running.bus.publish([QUEUE.out(entry)])


async def test_inspection(api: Api) -> None:
    status, summary = await api.call("GET", "/summary")
    assert status == 200
    assert [(r["name"], r["deferred"]) for r in summary["rows"]] == [("a.test", {"1h": 1})]
    status, by_tenant = await api.call("GET", "/summary?by=tenant")
    assert [r["name"] for r in by_tenant["rows"]] == ["shop"]
    status, listed = await api.call("GET", "/messages?domain=A.test&deferred=1")
    assert status == 200 and [m["message_id"] for m in listed] == ["4f3c2a1b00"]
    assert (await api.call("GET", "/messages?tenant=other"))[1] == []
    status, shown = await api.call("GET", "/messages/4f3c2a?headers=1&body=1")
    assert status == 200 and shown["message_id"] == "4f3c2a1b00"
    assert shown["deliveries"][0]["last_reply"]["text"] == "try later"
    assert shown["headers"] == "Subject: queued\nFrom: app@shop.test"
    assert shown["body"] == DATA.decode()


async def test_actions_are_published_with_their_audit_events(api: Api, running: Running) -> None:
    status, action = await api.call(
        "POST", "/suspend", {"target": "domain:a.test", "for": "2h", "why": "MX moving"}
    )
    assert status == 202 and action["verb"] == "queue_suspend" and action["until"] > now()
    status, suspended = await api.call("GET", "/suspensions")
    assert [(s["target"], s["why"]) for s in suspended] == [("domain:a.test", "MX moving")]
    assert (await api.call("POST", "/resume", {"target": "domain:a.test"}))[0] == 202
    assert (await api.call("GET", "/suspensions"))[1] == []
    status, flush = await api.call("POST", "/flush", {"target": "4f3c2a1b"})
    assert status == 202 and flush["target"] == "message:4f3c2a1b00"
    bounce = {"target": "all", "why": "compromised account", "confirm": True}
    assert (await api.call("POST", "/bounce", bounce))[0] == 202
    assert (await api.call("POST", "/throttle-cancel", {"target": "provider:google"}))[0] == 202
    verbs = {a.verb for a in await read_actions(running.bus)}
    assert verbs == {ControlVerb.QUEUE_FLUSH, ControlVerb.QUEUE_BOUNCE, ControlVerb.THROTTLE_CANCEL}
    events = [EVENTS.decode(m.value) for m in await read_all(running.bus, EVENTS.name) if m.value]
    audit = [(e.classification, e.by) for e in events if e.kind is EventKind.QUEUE_ACTION]
    assert [verb for verb, _ in audit] == [
        "queue_suspend",
        "queue_resume",
        "queue_flush",
        "queue_bounce",
        "throttle_cancel",
    ]
    assert all(by.startswith("api:127.0.0.1") for _, by in audit)


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/flush", {"target": "0000000000"}, 404, "no queued message"),
        ("/flush", {"target": "domain:nowhere.test"}, 404, "nothing queued for domain:nowhere"),
        ("/bounce", {"target": "tenant:other"}, 404, "nothing queued for tenant:other"),
        ("/resume", {"target": "domain:a.test"}, 404, "is not suspended"),
        ("/bounce", {"target": "all"}, 400, '"confirm": true'),
        ("/flush", {"target": "all", "for": "1h"}, 400, "takes no for"),
        ("/flush", {"target": "all", "why": "x"}, 400, "takes no why"),
        ("/suspend", {"target": "message:abc"}, 400, "this action takes domain:"),
        ("/suspend", {"target": "domain:a.test", "for": "forever"}, 400, "duration"),
        ("/throttle-cancel", {"target": "tenant:shop"}, 400, "this action takes domain:"),
        ("/flush", {"target": "all", "force": True}, 400, "unknown field `force`"),
        ("/flush", {}, 400, "missing required field `target`"),
    ],
)
async def test_bad_requests(api: Api, path: str, body: Any, status: int, error: str) -> None:
    answer = await api.call("POST", path, body)
    assert answer[0] == status and error in answer[1]["error"]


async def test_malformed_and_unknown(api: Api, running: Running) -> None:
    status, answer = await api.raw("/flush", b"{not json")
    assert status == 400 and "JSON" in answer["error"]
    assert (await api.call("GET", "/messages/0000000000"))[0] == 404
    assert (await api.call("GET", "/messages?domain=bad domain"))[0] == 400
    assert (await api.call("GET", "/summary?by=recipient"))[0] == 400
    assert [m for m in await read_all(running.bus, CONTROL.name)] == []  # nothing half-done


async def test_the_token_is_required(running: Running) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{running.admin_port}/admin/queue/summary"
        async with session.get(url) as response:
            assert response.status == 401

"""The tenant admin API over a real socket: a running bouncer, an aiohttp client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest

from shared import tenant_admin
from shared.tenants import TenantTable
from shared.wire.records import EventKind, SendingDomain
from shared.wire.topics import EVENTS
from testing.topics import read_all
from tests.services.bouncer.conftest import ADMIN_TOKEN, Running

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def api(running: Running) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession(headers=AUTH) as session:
        yield Api(session, f"http://127.0.0.1:{running.admin_port}/admin/tenants")


class Api:
    """Requests to the admin listener; each answers (status, decoded JSON)."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(self, method: str, path: str = "", body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, self.base + path, json=body) as response:
            return response.status, await response.json()


async def test_tenant_crud(api: Api, running: Running) -> None:
    status, body = await api.call("POST", "", {"id": "shop", "name": "Shop"})
    assert status == 201 and body["id"] == "shop" and body["revision"] == 1
    assert (await api.call("POST", "", {"id": "shop"}))[0] == 200  # a retry
    status, body = await api.call(
        "PATCH",
        "/shop",
        {
            "limits": {"per_hour": 100, "message_size": "10MiB"},
            "settings": {"paused_reply": "defer"},
        },
    )
    assert status == 200 and body["limits"]["message_size"] == 10 * 1024 * 1024
    status, body = await api.call("POST", "/shop/pause", {"why": "complaints"})
    assert status == 200 and body["status"]["state"] == "paused"
    assert body["status"]["by"].startswith("api:127.0.0.1")
    status, body = await api.call("POST", "/shop/resume")
    assert status == 200 and body["status"]["state"] == "active"
    status, body = await api.call("GET")
    assert status == 200 and [t["id"] for t in body] == ["shop"]
    assert (await api.call("GET", "/shop"))[1]["name"] == "Shop"
    assert (await api.call("DELETE", "/shop"))[0] == 200
    assert (await api.call("DELETE", "/shop"))[0] == 404
    events = [EVENTS.decode(m.value) for m in await read_all(running.bus, EVENTS.name) if m.value]
    details = [e.detail for e in events if e.kind is EventKind.TENANT_CHANGED]
    assert details == [
        "add",
        "set message_size, paused_reply, per_hour",
        "pause: complaints",
        "resume",
        "remove",
    ]


async def test_a_tenants_content_rules_are_set_by_patch(api: Api) -> None:
    await api.call("POST", "", {"id": "shop"})
    rules = {"allowed_extensions": ["msi"], "max_attachment_size": "5MiB"}
    status, body = await api.call("PATCH", "/shop", {"settings": {"content": rules}})
    assert status == 200, body
    assert body["settings"]["content"]["allowed_extensions"] == ["msi"]
    assert body["settings"]["content"]["max_attachment_size"] == 5 * 1024 * 1024
    bad = {"settings": {"content": {"signed_changes": "maybe"}}}
    status, body = await api.call("PATCH", "/shop", bad)
    assert status == 400 and "settings.content.signed_changes" in body["error"], body


async def test_one_sending_domain_paused_and_resumed(api: Api, running: Running) -> None:
    await api.call("POST", "", {"id": "shop"})
    domains = (SendingDomain(name="shop.test"), SendingDomain(name="news.shop.test"))
    await tenant_admin.update(
        running.bus, "shop", lambda t: msgspec.structs.replace(t, domains=domains), by="test"
    )
    assert (await api.call("POST", "/shop/domains/news.shop.test/pause", {}))[0] == 400
    status, body = await api.call("POST", "/shop/domains/news.shop.test/pause", {"why": "spam"})
    assert status == 200 and body["status"]["state"] == "active"
    states = {d["name"]: d["status"]["state"] for d in body["domains"]}
    assert states == {"shop.test": "active", "news.shop.test": "paused"}
    status, body = await api.call("POST", "/shop/domains/news.shop.test/resume")
    assert status == 200 and {d["status"]["state"] for d in body["domains"]} == {"active"}
    status, body = await api.call("POST", "/shop/domains/ghost.test/resume")
    assert status == 404 and "no domain 'ghost.test'" in body["error"]
    assert (await api.call("POST", "/shop/domains/shop.test/explode"))[0] == 404


async def test_tracking_of_a_tenant_and_of_one_domain(api: Api, running: Running) -> None:
    await api.call("POST", "", {"id": "shop"})
    domains = (SendingDomain(name="shop.test"), SendingDomain(name="news.shop.test"))
    await tenant_admin.update(
        running.bus, "shop", lambda t: msgspec.structs.replace(t, domains=domains), by="test"
    )
    tracking = {"opens": True, "clicks": "off", "host": "Click.Shop.Test"}
    status, body = await api.call("PATCH", "/shop", {"settings": {"tracking": tracking}})
    assert status == 200, body
    assert body["settings"]["tracking"] == {
        "opens": True,
        "clicks": False,
        "text_clicks": None,
        "host": "click.shop.test",
    }
    status, body = await api.call(
        "PATCH", "/shop/domains/news.shop.test", {"tracking": {"opens": None, "clicks": True}}
    )
    assert status == 200, body
    by_name = {d["name"]: d for d in body["domains"]}
    assert by_name["news.shop.test"]["tracking"]["clicks"] is True
    assert by_name["shop.test"]["tracking"]["clicks"] is None  # the other domain: untouched
    status, body = await api.call(
        "PATCH",
        "/shop/domains/news.shop.test",
        {"tracking": {"host": "links.shop.test"}, "ip_pool": "news"},
    )
    assert status == 200, body
    news = next(d for d in body["domains"] if d["name"] == "news.shop.test")
    assert (news["tracking"]["host"], news["ip_pool"]) == ("links.shop.test", "news")
    assert body["settings"]["tracking"]["opens"] is True  # the tenant's own: unchanged
    events = [EVENTS.decode(m.value) for m in await read_all(running.bus, EVENTS.name) if m.value]
    details = [e.detail for e in events if e.kind is EventKind.TENANT_CHANGED]
    assert details[-4:] == [
        "set tracking",
        "domain news.shop.test set tracking.clicks, tracking.opens",
        "domain news.shop.test set tracking.host",
        "domain news.shop.test ip_pool 'news'",
    ]
    assert all(e.by.startswith("api:127.0.0.1") for e in events[-4:])


@pytest.mark.parametrize(
    "case",
    [
        ("/shop", {"settings": {"tracking": {"opens": "maybe"}}}, 400, "settings.tracking.opens"),
        ("/shop", {"settings": {"tracking": {"host": "1.2.3.4"}}}, 400, "settings.tracking.host"),
        ("/shop", {"settings": {"tracking": "on"}}, 400, "settings.tracking: expected an object"),
        (
            "/shop/domains/shop.test",
            {"tracking": {"host": "https://x.test"}},
            400,
            "domains.shop.test.tracking.host",
        ),
        ("/shop/domains/shop.test", {"tracking": {"pixel": True}}, 400, "no such setting"),
        # Nothing is published when one of the two is wrong.
        (
            "/shop/domains/shop.test",
            {"tracking": {"opens": True}, "ip_pool": "Bad Pool"},
            400,
            "ip_pool 'Bad Pool'",
        ),
        ("/shop/domains/shop.test", {}, 400, "nothing to change"),
        ("/shop/domains/shop.test", {"colour": "red"}, 400, "body:"),
        ("/shop/domains/ghost.test", {"tracking": {"opens": True}}, 404, "no domain 'ghost.test'"),
        ("/ghost/domains/shop.test", {"tracking": {"opens": True}}, 404, "no tenant 'ghost'"),
    ],
)
async def test_tracking_errors_name_the_field(
    api: Api, running: Running, case: tuple[str, Any, int, str]
) -> None:
    path, body, status, error = case
    await api.call("POST", "", {"id": "shop"})
    await tenant_admin.update(
        running.bus,
        "shop",
        lambda t: msgspec.structs.replace(t, domains=(SendingDomain(name="shop.test"),)),
        by="test",
    )
    revision = (await tenant_admin.get(running.bus, "shop")).revision
    answer_status, answer = await api.call("PATCH", path, body)
    assert (answer_status, error in answer["error"]) == (status, True), answer
    assert (await tenant_admin.get(running.bus, "shop")).revision == revision


@pytest.mark.parametrize(
    "case",
    [
        ("GET", "/ghost", None, 404, "no tenant 'ghost'"),
        ("PATCH", "/ghost", {"name": "x"}, 404, "no tenant 'ghost'"),
        ("POST", "", {"id": "Bad Id"}, 400, "tenant id 'Bad Id'"),
        ("POST", "", {"idx": "shop"}, 400, "body:"),
        ("PATCH", "/shop", {"limits": {"per_day": "many"}}, 400, "limits.per_day"),
        ("PATCH", "/shop", {"limits": {"per_week": 1}}, 400, "limits.per_week: no such limit"),
        ("POST", "/shop/pause", {}, 400, "why: required"),
        ("DELETE", "/shop/apikeys/pl_00000000", None, 404, "no API key 'pl_00000000'"),
        ("POST", "/shop/credentials/ghost/rotate", None, 404, "no credential 'ghost'"),
        ("GET", "/shop/unknown", None, 404, "no route"),
    ],
)
async def test_errors_are_json(api: Api, case: tuple[str, str, Any, int, str]) -> None:
    method, path, body, status, error = case
    await api.call("POST", "", {"id": "shop"})
    answer_status, answer = await api.call(method, path, body)
    assert answer_status == status
    assert error in answer["error"]


async def test_the_token_is_required(api: Api) -> None:
    async with aiohttp.ClientSession() as anonymous, anonymous.get(api.base) as response:
        assert response.status == 401


async def test_credentials_and_api_keys(api: Api, running: Running) -> None:
    await api.call("POST", "", {"id": "shop"})
    await api.call("POST", "", {"id": "other"})
    status, body = await api.call("POST", "/shop/credentials", {"name": "shop-app"})
    assert status == 201 and len(body["password"]) == 24
    password = body["password"]
    status, body = await api.call("POST", "/other/credentials", {"name": "shop-app"})
    assert status == 409 and "belongs to tenant 'shop'" in body["error"]
    status, body = await api.call("GET", "/shop/credentials")
    assert status == 200 and body[0]["name"] == "shop-app" and "secret" not in body[0]
    status, body = await api.call(
        "POST", "/shop/credentials/shop-app/rotate", {"password": "a person's passphrase"}
    )
    assert status == 200 and "password" not in body  # a given password is not echoed
    status, body = await api.call("POST", "/shop/apikeys", {"name": "ci"})
    assert status == 201 and body["key"].startswith(body["id"] + "_")
    key, key_id = body["key"], body["id"]
    status, listed = await api.call("GET", "/shop/apikeys")
    assert listed[0]["id"] == key_id and "hash" not in listed[0] and key not in str(listed)
    assert "scrypt" not in str(await api.call("GET", "/shop"))

    table = TenantTable()
    await table.load(running.bus)
    assert await table.verify_credential("shop-app", b"a person's passphrase") is not None
    assert await table.verify_credential("shop-app", password.encode()) is None
    assert table.by_api_key(key) is not None
    status, body = await api.call("DELETE", f"/shop/apikeys/{key_id}")
    assert status == 200 and body["revoked_at"] > 0
    assert (await api.call("DELETE", "/shop/credentials/shop-app"))[0] == 200
    assert (await api.call("DELETE", "/shop/credentials/shop-app"))[0] == 404
    await table.load(running.bus)
    assert table.by_api_key(key) is None and table.by_credential("shop-app") is None


async def test_a_tenants_tls_requirement_is_set_by_patch(api: Api) -> None:
    await api.call("POST", "", {"id": "shop"})
    assert (await api.call("GET", "/shop"))[1]["settings"]["require_tls"] is None
    status, body = await api.call("PATCH", "/shop", {"settings": {"require_tls": True}})
    assert status == 200 and body["settings"]["require_tls"] is True, body
    status, body = await api.call("PATCH", "/shop", {"settings": {"require_tls": None}})
    assert status == 200 and body["settings"]["require_tls"] is None, body
    status, body = await api.call("PATCH", "/shop", {"settings": {"require_tls": "maybe"}})
    assert status == 400 and "settings.require_tls" in body["error"], body

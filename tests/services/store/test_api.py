"""The store's HTTP API on a real listener, with real requests: tenant keys see their own
tenant only, the admin token sees all, CSV parses back, bad input and a dead store answer."""

from __future__ import annotations

import csv
import io
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest

from services.store.api import StoreApi, api_listener, build_api, parse_time
from services.store.config import StoreConfig
from shared.credentials import hash_api_key, new_api_key
from shared.errors import ConfigError, StoreInvalid
from shared.store.db import Database, Executor, open_database
from shared.tenants import TenantTable
from shared.wire.records import ApiKey, Tenant
from shared.wire.topics import TENANTS
from testing.storedata import DAY, MSG_A, MSG_B, NOW, other_events, shop_events
from testing.storefixtures import DAYS
from testing.storerows import insert_events, rebuild_rollups
from testing.storeschema import create_schema

ADMIN = b"admin-token-0123456789abcdef"


class Client:
    """Real HTTP requests to the listener, as one caller."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self.session, self.base, self.token = session, base, token

    async def get(self, path: str, **headers: str) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = {"Authorization": f"Bearer {self.token}", **headers} if self.token else headers
        async with self.session.get(self.base + path, headers=headers) as response:
            text = await response.text()
            is_json = response.content_type == "application/json"
            return response.status, (await response.json() if is_json else text), response


@pytest.fixture
async def served(query_url: str) -> AsyncIterator[tuple[str, dict[str, str], Database]]:
    db = await open_database(query_url)
    await create_schema(db, DAYS)
    await insert_events(db, shop_events() + other_events())
    await rebuild_rollups(db)
    table = TenantTable()
    keys = {}
    for tenant in ("shop", "other"):
        key, key_id = new_api_key()
        keys[tenant] = key
        record = Tenant(
            id=tenant, api_keys=(ApiKey(id=key_id, hash=hash_api_key(key), created_at=1),)
        )
        table.apply(tenant.encode(), TENANTS.encode(record))
    listener = api_listener(StoreApi(lambda: db, table, ADMIN, clock=lambda: NOW), "127.0.0.1", 0)
    await listener.start()
    try:
        yield f"http://127.0.0.1:{listener.port}", keys, db
    finally:
        await listener.close()
        await db.close()


async def test_tenant_isolation_and_admin(served: tuple[str, dict[str, str], Database]) -> None:
    base, keys, _ = served
    async with aiohttp.ClientSession() as session:
        shop = Client(session, base, keys["shop"])
        other = Client(session, base, keys["other"])
        admin = Client(session, base, ADMIN.decode())
        status, body, _ = await shop.get(f"/v1/messages/{MSG_A}")
        assert status == 200 and body["message_id"] == MSG_A and len(body["events"]) == 8
        status, body, _ = await shop.get(f"/v1/messages/{MSG_B}")  # other's message
        assert status == 404 and "error" in body
        assert (await other.get(f"/v1/messages/{MSG_B[:8]}"))[0] == 200
        status, body, _ = await shop.get("/v1/messages?recipient=ann@gmail.com&status=delivered")
        assert status == 200 and {e["tenant"] for e in body["events"]} == {"shop"}
        assert len(body["events"]) == 2
        status, body, _ = await admin.get("/v1/messages?recipient=ann@gmail.com&status=delivered")
        assert {e["tenant"] for e in body["events"]} == {"shop", "other"}
        status, body, _ = await admin.get("/v1/messages?recipient=ann@gmail.com&tenant=other")
        assert status == 200 and {e["tenant"] for e in body["events"]} == {"other"}
        assert (await admin.get(f"/v1/messages/{MSG_B}"))[0] == 200
        status, body, _ = await shop.get("/v1/messages?tenant=other")
        assert status == 403
        status, body, _ = await shop.get(f"/v1/reports?since={DAY}&until={NOW}")
        assert status == 200 and body["totals"]["delivered"] == 2 and body["tenant"] == "shop"
        status, body, _ = await admin.get(f"/v1/reports?since={DAY}&until={NOW}")
        assert body["totals"]["delivered"] == 3 and body["tenant"] is None


async def test_authentication(served: tuple[str, dict[str, str], Database]) -> None:
    base, _, _ = served
    async with aiohttp.ClientSession() as session:
        for token in ("", "pl_00000000_" + "x" * 43, "admin-token-wrong"):
            status, body, response = await Client(session, base, token).get("/v1/messages")
            assert status == 401 and "error" in body
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_csv_and_pages(served: tuple[str, dict[str, str], Database]) -> None:
    base, keys, _ = served
    async with aiohttp.ClientSession() as session:
        shop = Client(session, base, keys["shop"])
        status, text, response = await shop.get(
            "/v1/messages?recipient=ann@gmail.com&limit=2", Accept="text/csv"
        )
        assert status == 200 and response.content_type == "text/csv"
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 2 and rows[0]["recipient"] == "ann@gmail.com"
        cursor = response.headers["X-Next-Cursor"]
        status, body, _ = await shop.get(
            f"/v1/messages?recipient=ann@gmail.com&limit=2&cursor={cursor}"
        )
        assert status == 200 and body["events"][0]["id"] not in {r["id"] for r in rows}
        status, text, _ = await shop.get(
            f"/v1/reports?campaign=spring-sale&since=2026-12-06T00:00:00Z&until={NOW}&format=csv"
        )
        values = {
            (r["section"], r["name"], r["metric"]): r["value"]
            for r in csv.DictReader(io.StringIO(text))
        }
        assert values[("totals", "", "accepted")] == "1"
        status, text, _ = await shop.get(f"/v1/messages/{MSG_A}?format=csv")
        assert len(list(csv.DictReader(io.StringIO(text)))) == 8


async def test_bad_input_is_a_400(served: tuple[str, dict[str, str], Database]) -> None:
    base, keys, _ = served
    async with aiohttp.ClientSession() as session:
        shop = Client(session, base, keys["shop"])
        for path in (
            "/v1/messages?status=sent",
            "/v1/messages?limit=5000",
            "/v1/messages?limit=many",
            "/v1/messages?since=yesterday",
            "/v1/messages?cursor=xyz",
            "/v1/messages?format=xml",
            "/v1/messages/a1b2",
            "/v1/messages/a1b2c3d4",  # two messages start with it
            f"/v1/reports?since={NOW}&until={DAY}",
        ):
            status, body, _ = await shop.get(path)
            assert status == 400, path
            assert body["error"], path


async def test_a_dead_store_is_a_503() -> None:
    down = cast(Executor, _Down())
    databases: list[Executor | None] = [None, down]  # not connected yet, then gone
    api = StoreApi(lambda: databases[0], TenantTable(), ADMIN, clock=lambda: NOW)
    listener = api_listener(api, "127.0.0.1", 0)
    await listener.start()
    try:
        async with aiohttp.ClientSession() as session:
            admin = Client(session, f"http://127.0.0.1:{listener.port}", ADMIN.decode())
            for _ in range(2):
                status, _, response = await admin.get("/v1/messages")
                assert status == 503 and response.headers["Retry-After"] == "5"
                databases.pop(0)
    finally:
        await listener.close()


class _Down:
    """A store whose database does not answer: it raises what ``shared.store.db`` raises
    for a server that is gone (db.py's own tests show that mapping on a real server)."""

    dialect = "postgres"

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        from shared.errors import StoreUnavailable  # noqa: PLC0415

        raise StoreUnavailable("PostgreSQL at postgresql://db: connection refused")

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        return (await self.fetch(sql, *args))[0]


def test_times_are_epoch_or_iso() -> None:
    assert parse_time("1796515200", "since") == DAY
    assert parse_time("2026-12-06T00:00:00Z", "since") == DAY
    assert parse_time("2026-12-06T01:00:00+01:00", "since") == DAY
    assert parse_time("2026-12-06", "since") == DAY  # no offset: UTC
    assert parse_time("", "since") is None
    with pytest.raises(StoreInvalid):
        parse_time("last tuesday", "since")


async def test_built_from_the_config(tmp_path: Path) -> None:
    assert build_api(StoreConfig(), "t.toml", lambda: None, TenantTable()) is None  # port 0
    with pytest.raises(ConfigError, match=r"store\.admin_token_file"):
        build_api(
            StoreConfig(api_port=9999, admin_token_file=tmp_path / "missing"),
            "t.toml",
            lambda: None,
            TenantTable(),
        )
    token = tmp_path / "admin_token"
    token.write_text(ADMIN.decode() + "\n")
    cfg = StoreConfig(api_host="127.0.0.1", api_port=free_port(), admin_token_file=token)
    listener = build_api(cfg, "t.toml", lambda: None, TenantTable(), clock=lambda: NOW)
    assert listener is not None
    await listener.start()
    try:
        async with aiohttp.ClientSession() as session:
            admin = Client(session, f"http://127.0.0.1:{listener.port}", ADMIN.decode())
            status, body, _ = await admin.get("/v1/reports")
            assert status == 503 and "unavailable" in body["error"]
            wrong = Client(session, f"http://127.0.0.1:{listener.port}", "x" * 30)
            assert (await wrong.get("/v1/reports"))[0] == 401
    finally:
        await listener.close()


def free_port() -> int:
    """A port nothing listens on now (the config cannot say 0: that is "no API")."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

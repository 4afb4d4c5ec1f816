"""An ingest with its sending API on an ephemeral port, a tenant with a verified domain and
an API key, and an HTTP client (aiohttp's) to call it; on the embedded bus or real Kafka."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
import pytest

from shared import tenant_access, tenant_admin
from shared.wire.records import SendingDomain, Tenant
from tests.services.ingest.conftest import Running, StartIngest

TENANT = "acme"
DOMAIN = "acme.test"
BY = "test"


@dataclass
class Answer:
    """One HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return msgspec.json.decode(self.body)


@dataclass
class Api:
    """The running ingest, its API's base URL and a valid key of tenant ``acme``."""

    ingest: Running
    url: str
    key: str
    http: aiohttp.ClientSession
    extra_keys: dict[str, str] = field(default_factory=dict)

    async def post(
        self,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """POST ``body`` as JSON (or ``raw`` bytes) with the key (``key=""``: none)."""
        sent = dict(headers or {})
        chosen = self.key if key is None else key
        if chosen:
            sent["Authorization"] = f"Bearer {chosen}"
        if raw is None:
            raw = msgspec.json.encode(body)
        sent.setdefault("Content-Type", "application/json")
        async with self.http.post(self.url + path, data=raw, headers=sent) as response:
            return Answer(response.status, dict(response.headers), await response.read())

    async def get(self, path: str) -> Answer:
        async with self.http.get(self.url + path) as response:
            return Answer(response.status, dict(response.headers), await response.read())


async def until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


async def follow(ingest: Running, tenant_id: str = TENANT) -> None:
    """Wait until the running ingest has the tenant's current record."""
    current = await tenant_admin.get(ingest.bus, tenant_id)
    table = ingest.stage.core.policy.tenants
    await until(
        lambda: (table.get(tenant_id) or Tenant(id="")).revision == current.revision,
        "ingest did not follow the tenant",
    )


async def add_tenant(ingest: Running, tenant_id: str, domain: str) -> str:
    """A tenant with ``domain`` verified and an API key; the key."""
    await tenant_admin.add(ingest.bus, tenant_id, name=tenant_id, by=BY)
    await tenant_admin.update(
        ingest.bus,
        tenant_id,
        lambda t: msgspec.structs.replace(t, domains=(SendingDomain(name=domain, verified=True),)),
        by=BY,
    )
    _, key = await tenant_access.add_api_key(ingest.bus, tenant_id, name="app", by=BY)
    await follow(ingest, tenant_id)
    return key


StartApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def start_api(start_ingest: StartIngest) -> AsyncIterator[StartApi]:
    """Start an ingest with the API (``**ingest`` keys override the section)."""
    sessions: list[aiohttp.ClientSession] = []

    async def start(api: dict[str, Any] | None = None, **ingest: Any) -> Api:
        running = await start_ingest(api={"listen": "127.0.0.1:0", **(api or {})}, **ingest)
        key = await add_tenant(running, TENANT, DOMAIN)
        assert running.stage.api is not None
        http = aiohttp.ClientSession()
        sessions.append(http)
        return Api(running, f"http://127.0.0.1:{running.stage.api.port}", key, http)

    yield start
    for http in sessions:
        await http.close()


@pytest.fixture
async def api(start_api: StartApi) -> Api:
    """An ingest with the API on the embedded bus."""
    return await start_api()


def message(**fields: Any) -> dict[str, Any]:
    """A valid message body, ``fields`` overriding."""
    body: dict[str, Any] = {
        "from": f"Acme <app@{DOMAIN}>",
        "to": ["ann@example.org"],
        "subject": "Hello",
        "text": "Hello Ann.\n",
    }
    body.update(fields)
    return body

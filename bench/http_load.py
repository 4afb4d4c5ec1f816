"""HTTP load for the sending API: concurrent clients posting messages to ingest's API.

Each client sends its requests one after the other (aiohttp, one connection kept alive, or a
new connection per request), the way an application's worker pool calls a sending API. The
endpoints measured: ``/v1/messages/raw`` carrying the same 5 KB message the SMTP runs send
(so the two front doors are compared on the same bytes), ``/v1/messages`` with the same text
as JSON parts (the message built by ingest with the ``email`` package), and
``/v1/messages/batch`` with many such messages per request. The latency is from the request's
first byte to the ``202`` (the time a client waits for "durable"); for a batch it is the
whole request's. Owns the client side only: ``bench_ingest.py`` starts ingest.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec

SENDER = "app@bench.example"
RCPT = "rcpt@dest.example"


@dataclass(frozen=True)
class HttpMode:
    """What one run sends: an endpoint, how many messages per request, connection reuse."""

    name: str
    path: str
    per_request: int = 1
    reuse: bool = True
    #: Clients of this mode, when not the run's count: a few clients posting batches, as an
    #: application flushing a queue does (20 clients x 100 would be one request each).
    clients: int = 0


MODES = (
    HttpMode("http raw, reuse", "/v1/messages/raw"),
    HttpMode("http raw, new connection", "/v1/messages/raw", reuse=False),
    HttpMode("http json, reuse", "/v1/messages"),
    HttpMode("http batch of 100, 2 clients", "/v1/messages/batch", per_request=100, clients=2),
)


@dataclass(frozen=True)
class Api:
    """Where the API listens and the key to call it with."""

    url: str  # http://127.0.0.1:<port>
    key: str

    @property
    def headers(self) -> dict[str, str]:
        """The headers of every request."""
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}


@dataclass
class Tally:
    """What the clients of one run saw."""

    latencies: list[float] = field(default_factory=list)  # per request, seconds
    accepted: int = 0  # messages
    failures: int = 0  # requests not answered 202


def bodies(mode: HttpMode, raw: bytes) -> bytes:
    """The request body of ``mode`` for the message ``raw`` (headers, blank line, text)."""
    text = raw.partition(b"\r\n\r\n")[2]
    if mode.path.endswith("/raw"):
        return msgspec.json.encode({"from": SENDER, "to": [RCPT], "message": raw.decode()})
    one: dict[str, Any] = {
        "from": f"Bench <{SENDER}>",
        "to": [RCPT],
        "subject": "Your weekly report",
        "text": text.decode().replace("\r\n", "\n"),
    }
    if mode.per_request == 1:
        return msgspec.json.encode(one)
    return msgspec.json.encode({"messages": [one] * mode.per_request})


async def _client(api: Api, body: bytes, mode: HttpMode, *, requests: int, tally: Tally) -> None:
    connector = aiohttp.TCPConnector(limit=1, force_close=not mode.reuse)
    async with aiohttp.ClientSession(connector=connector) as http:
        for _ in range(requests):
            started = time.perf_counter()
            try:
                url = api.url + mode.path
                async with http.post(url, data=body, headers=api.headers) as response:
                    await response.read()
                    status = response.status
            except aiohttp.ClientError:
                status = 0
            if status == 202:
                tally.latencies.append(time.perf_counter() - started)
                tally.accepted += mode.per_request
            else:
                tally.failures += 1


async def run(
    api: Api, raw: bytes, mode: HttpMode, *, clients: int, messages: int
) -> tuple[Tally, float]:
    """``messages`` (rounded to whole requests per client) sent by ``clients`` clients (or
    the mode's own count); the tally and the wall time."""
    clients = mode.clients or clients
    body = bodies(mode, raw)
    requests = max(1, messages // (clients * mode.per_request))
    tally = Tally()
    started = time.perf_counter()
    await asyncio.gather(
        *(_client(api, body, mode, requests=requests, tally=tally) for _ in range(clients))
    )
    return tally, time.perf_counter() - started


async def wait_for_key(api: Api, deadline: float) -> None:
    """Until ingest knows the key (it follows postline.tenants): an empty request is
    answered 422 then, 401 before."""
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                url = api.url + "/v1/messages"
                async with http.post(url, data=b"{}", headers=api.headers) as r:
                    if r.status != 401:
                        return
            except aiohttp.ClientError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise TimeoutError("ingest never accepted the API key")
            await asyncio.sleep(0.1)

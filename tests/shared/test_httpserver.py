"""The process HTTP port over a real socket on 127.0.0.1: probes, metrics, routing, limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from shared.config import HttpConfig
from shared.http import HttpRequest, HttpResponse, Router
from shared.httpserver import HttpServer
from shared.metrics import CoreMetrics


class Probe:
    """Readiness the test flips by hand."""

    def __init__(self) -> None:
        self.states = {"alpha": False, "beta": True}

    def __call__(self) -> dict[str, bool]:
        return dict(self.states)


async def echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse(201, request.body + b"|" + ",".join(request.query.get("q", [])).encode())


async def broken(_request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom")


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
async def server(probe: Probe) -> AsyncIterator[HttpServer]:
    registry = CollectorRegistry()
    CoreMetrics(registry)
    router = Router()
    router.add("POST", "/echo", echo)
    router.add("GET", "/broken", broken)
    srv = HttpServer(HttpConfig(host="127.0.0.1", port=0), registry, probe, [router], max_body=64)
    await srv.start()
    yield srv
    await srv.close()


async def request(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    writer.write_eof()  # half-close: a truncated request ends here instead of timing out
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), {k.lower(): v for k, v in headers.items()}, body


async def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    return await request(port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


async def test_ephemeral_port_is_exposed(server: HttpServer) -> None:
    assert server.port > 0


async def test_healthz(server: HttpServer) -> None:
    status, headers, body = await get(server.port, "/healthz")
    assert (status, body) == (200, b"ok\n")
    assert headers["connection"] == "close"


async def test_readyz_flips_with_stage_readiness(server: HttpServer, probe: Probe) -> None:
    status, _, body = await get(server.port, "/readyz")
    assert status == 503
    assert b"alpha" in body and b"beta" not in body
    probe.states["alpha"] = True
    status, _, _ = await get(server.port, "/readyz")
    assert status == 200
    probe.states["beta"] = False
    status, _, body = await get(server.port, "/readyz")
    assert status == 503 and b"beta" in body


async def test_metrics_exposition(server: HttpServer) -> None:
    status, headers, body = await get(server.port, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=")
    assert b"postline_build_info{" in body
    assert b"# HELP postline_records_consumed_total" in body


async def test_unknown_path_is_404_and_wrong_method_405(server: HttpServer) -> None:
    assert (await get(server.port, "/nope"))[0] == 404
    assert (await request(server.port, b"POST /healthz HTTP/1.1\r\n\r\n"))[0] == 405
    assert (await get(server.port, "/echo"))[0] == 405


async def test_added_route_gets_body_and_query(server: HttpServer) -> None:
    raw = b"POST /echo?q=a&q=b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    status, _, body = await request(server.port, raw)
    assert (status, body) == (201, b"hello|a,b")


async def test_handler_exception_is_500_and_logged(
    server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    status, _, _ = await get(server.port, "/broken")
    assert status == 500
    assert any(r.message == "http handler failed" and r.exc_info for r in caplog.records)
    assert (await get(server.port, "/healthz"))[0] == 200  # the port keeps serving


async def test_body_over_limit_is_413(server: HttpServer) -> None:
    raw = b"POST /echo HTTP/1.1\r\nContent-Length: 65\r\n\r\n" + b"x" * 65
    assert (await request(server.port, raw))[0] == 413


async def test_malformed_requests_are_400(server: HttpServer) -> None:
    assert (await request(server.port, b"NONSENSE\r\n\r\n"))[0] == 400
    assert (await request(server.port, b"GET / HTTP/1.1\r\nno colon\r\n\r\n"))[0] == 400
    raw = b"POST /echo HTTP/1.1\r\nContent-Length: abc\r\n\r\n"
    assert (await request(server.port, raw))[0] == 400
    raw = b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort"
    assert (await request(server.port, raw))[0] == 400


async def test_oversized_headers_are_431(server: HttpServer) -> None:
    raw = b"GET /healthz HTTP/1.1\r\n" + b"X-Big: " + b"a" * 20000 + b"\r\n\r\n"
    assert (await request(server.port, raw))[0] == 431

"""The process HTTP port over real sockets on 127.0.0.1: probes, metrics, routing, limits.

Requests are raw bytes on a socket, so what is tested is what a hostile client can send,
not what a well-behaved client library would.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from shared.config import HttpConfig
from shared.errors import ListenError
from shared.runtime.http import HttpRequest, HttpResponse, Router
from shared.runtime.httpserver import HttpListener, HttpServer
from shared.runtime.metrics import CoreMetrics

CLOSE = b"Host: x\r\nConnection: close\r\n"
DEADLINE = 10.0  # only guards against a hang; no assertion depends on how fast an answer is


class Probe:
    """Readiness the test flips by hand."""

    def __init__(self) -> None:
        self.states = {"alpha": False, "beta": True}

    def __call__(self) -> dict[str, bool]:
        return dict(self.states)


async def echo(request: HttpRequest) -> HttpResponse:
    body = await request.body()
    return HttpResponse(201, body + b"|" + ",".join(request.query.get("q", [])).encode())


async def guarded(request: HttpRequest) -> HttpResponse:
    """Like the admin API: a token is checked before the body is read."""
    if request.headers.get("authorization") != "Bearer good":
        return HttpResponse(401, b"no\n")
    return HttpResponse(200, await request.body())


async def broken(_request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom")


@pytest.fixture
def probe() -> Probe:
    return Probe()


def routes() -> Router:
    router = Router()
    router.add("POST", "/echo", echo, max_body=64)
    router.add("POST", "/guarded", guarded, max_body=1024 * 1024)
    router.add("GET", "/broken", broken)
    return router


@pytest.fixture
async def server(probe: Probe) -> AsyncIterator[HttpServer]:
    registry = CollectorRegistry()
    CoreMetrics(registry)
    srv = HttpServer(HttpConfig(host="127.0.0.1", port=0), registry, probe, [routes()])
    await srv.start()
    yield srv
    await srv.close()


def parse(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), {k.lower(): v for k, v in headers.items()}, body


async def request(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` and read until the server closes (requests say ``Connection: close``).

    Our side stays open, as a client still sending its body would: an answer to a request
    whose body never comes proves the server did not wait for it.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), DEADLINE)
    finally:
        writer.close()
    return parse(data)


async def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    raw = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    return await request(port, raw)


async def test_ephemeral_port_is_exposed(server: HttpServer) -> None:
    assert server.port > 0


async def test_healthz(server: HttpServer) -> None:
    status, _, body = await get(server.port, "/healthz")
    assert (status, body) == (200, b"ok\n")


async def test_keep_alive_serves_two_requests_on_one_connection(server: HttpServer) -> None:
    one = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    two = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(one + two)
    data = await asyncio.wait_for(reader.read(), DEADLINE)
    writer.close()
    assert data.count(b"HTTP/1.1 200 OK") == 2


async def test_readyz_flips_with_stage_readiness(server: HttpServer, probe: Probe) -> None:
    status, _, body = await get(server.port, "/readyz")
    assert (status, body) == (503, b"not ready: alpha\n")
    probe.states["alpha"] = True
    status, _, body = await get(server.port, "/readyz")
    assert (status, body) == (200, b"ready\n")
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
    assert (
        await request(
            server.port, b"POST /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
    )[0] == 405
    assert (await get(server.port, "/echo"))[0] == 405


async def test_added_route_gets_body_and_query(server: HttpServer) -> None:
    raw = b"POST /echo?q=a&q=b HTTP/1.1\r\n" + CLOSE + b"Content-Length: 5\r\n\r\nhello"
    status, _, body = await request(server.port, raw)
    assert (status, body) == (201, b"hello|a,b")


async def test_routes_a_stage_adds_after_the_port_is_bound_are_served(probe: Probe) -> None:
    # The runtime binds the port first (a busy port fails the start early) and stages add
    # their routes while they are created: a prefix route added late must still be found.
    late = Router()
    srv = HttpServer(HttpConfig(host="127.0.0.1", port=0), CollectorRegistry(), probe, [late])
    await srv.start()
    try:
        late.add("POST", "/unsubscribe/", echo, max_body=64)
        raw = b"POST /unsubscribe/tok-en_1 HTTP/1.1\r\n" + CLOSE + b"Content-Length: 2\r\n\r\nhi"
        assert (await request(srv.port, raw))[:3:2] == (201, b"hi|")
        assert (await get(srv.port, "/unsubscribe/x"))[0] == 405
    finally:
        await srv.close()


async def test_chunked_body_is_read(server: HttpServer) -> None:
    raw = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"
    )
    assert (await request(server.port, raw))[:3:2] == (201, b"hello|")


async def test_handler_exception_is_500_and_logged(
    server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    status, _, _ = await get(server.port, "/broken")
    assert status == 500
    assert any(r.message == "http handler failed" and r.exc_info for r in caplog.records)
    assert (await get(server.port, "/healthz"))[0] == 200  # the port keeps serving


async def test_declared_body_over_route_limit_is_413_before_it_arrives(
    server: HttpServer,
) -> None:
    raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 65\r\n\r\n"
    status, headers, _ = await request(server.port, raw)
    assert status == 413
    assert headers["connection"] == "close"


async def test_chunked_body_over_route_limit_is_413(server: HttpServer) -> None:
    chunk = b"x" * 40
    raw = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        + (b"28\r\n" + chunk + b"\r\n") * 3
    )
    assert (await request(server.port, raw))[0] == 413


async def test_body_is_not_read_before_the_handler_authenticates(server: HttpServer) -> None:
    # The client announces 1 MiB and sends none of it: the refusal must not wait for it.
    raw = (
        b"POST /guarded HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1048576\r\n\r\n"
    )
    status, headers, _ = await request(server.port, raw)
    assert status == 401
    assert headers["connection"] == "close"  # the unread body is not drained


async def test_body_is_not_read_for_an_unknown_route(server: HttpServer) -> None:
    raw = b"POST /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1048576\r\n\r\n"
    assert (await request(server.port, raw))[0] == 404


async def test_route_without_body_refuses_one(server: HttpServer) -> None:
    raw = b"GET /broken HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc"
    # /broken would raise; it never asked for a body, so it runs and the body is ignored.
    assert (await request(server.port, raw))[0] == 500


async def test_two_content_length_headers_are_400(server: HttpServer) -> None:
    # Request smuggling (RFC 9112 6.3): differing lengths must be refused at once, not
    # waited on (the hand-written server answered 408 after its read timeout).
    raw = (
        b"POST /echo HTTP/1.1\r\n" + CLOSE + b"Content-Length: 5\r\nContent-Length: 10\r\n\r\nhello"
    )
    assert (await request(server.port, raw))[0] == 400
    raw = (
        b"POST /echo HTTP/1.1\r\n" + CLOSE + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
    )
    assert (await request(server.port, raw))[0] == 400


async def test_content_length_with_chunked_is_400(server: HttpServer) -> None:
    raw = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    )
    assert (await request(server.port, raw))[0] == 400


async def test_malformed_requests_are_400(server: HttpServer) -> None:
    assert (await request(server.port, b"NONSENSE\r\n\r\n"))[0] == 400
    assert (await request(server.port, b"GET / HTTP/1.1\r\nno colon\r\n\r\n"))[0] == 400
    raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: abc\r\n\r\n"
    assert (await request(server.port, raw))[0] == 400


async def test_oversized_header_is_refused(server: HttpServer) -> None:
    raw = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "
        + b"a" * 20000
        + b"\r\n\r\n"
    )
    assert (await request(server.port, raw))[0] in (400, 431)


async def test_too_many_headers_are_refused(server: HttpServer) -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    raw = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + many + b"\r\n"
    assert (await request(server.port, raw))[0] in (400, 431)


async def wait_until(check: object, what: str) -> None:
    assert callable(check)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_connections_past_the_cap_are_refused_before_reading() -> None:
    listener = HttpListener("127.0.0.1", 0, [routes()], key="test.port", max_connections=2)
    await listener.start()
    held = []
    try:
        for _ in range(2):  # two idle keep-alive connections fill the cap
            held.append(await asyncio.open_connection("127.0.0.1", listener.port))
        await wait_until(lambda: listener.open_connections == 2, "two open connections")
        status, headers, body = await request(
            listener.port,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
        )
        assert (status, body) == (503, b"too many connections\n")
        assert headers["connection"] == "close" and listener.refused == 1
        _, writer = held.pop()
        writer.close()
        await wait_until(lambda: listener.open_connections == 1, "a freed slot")
        raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"
        assert (await request(listener.port, raw))[0] == 201
    finally:
        for _, writer in held:
            writer.close()
        await listener.close()


async def test_a_client_trickling_headers_is_closed_at_the_idle_limit() -> None:
    listener = HttpListener("127.0.0.1", 0, [routes()], key="test.port", idle_timeout=0.2)
    await listener.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        )  # headers never finish
        assert await asyncio.wait_for(reader.read(), DEADLINE) == b""  # closed by the server
        writer.close()
        await wait_until(lambda: listener.open_connections == 0, "the slot freed")
    finally:
        await listener.close()


async def test_port_in_use_names_the_config_key(probe: Probe) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        srv = HttpServer(HttpConfig(host="127.0.0.1", port=port), CollectorRegistry(), probe)
        with pytest.raises(
            ListenError, match=rf"^http\.port: cannot listen on 127\.0\.0\.1:{port}"
        ):
            await srv.start()

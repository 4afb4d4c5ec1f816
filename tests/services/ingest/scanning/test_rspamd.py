"""rspamd's answers, good and broken, read by the client over real sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from services.ingest.scanning.rspamd import (
    Envelope,
    RspamdClient,
    ScannerUnavailable,
    parse_reply,
    request_headers,
)

ENVELOPE = Envelope(
    mail_from="a@example.com",
    rcpt_to=("b@example.org", "c@example.net"),
    ip="192.0.2.7",
    helo="client.example",
    user="alice",
    queue_id="abc123",
)
ANSWER = (
    b'{"action": "add header", "score": 7.25, "required_score": 6.0, "is_skipped": false,'
    b' "symbols": {"A": {"name": "A", "score": 5.0}, "B": {"name": "B", "score": -3.0},'
    b' "C": {"name": "C", "score": 0.25}},'
    b' "milter": {"add_headers": {"X-Spam-Status": {"value": "Yes", "order": 0},'
    b' "X-Multi": [{"value": "1"}, "2"]}, "remove_headers": {"X-Spam": 1}}}'
)


def test_an_answer_becomes_a_verdict_with_its_top_symbols() -> None:
    verdict = parse_reply(ANSWER)
    assert (verdict.action, verdict.score, verdict.required) == ("add header", 7.25, 6.0)
    assert verdict.top(2) == {"A": 5.0, "B": -3.0}
    assert verdict.add_headers == (("X-Spam-Status", "Yes"), ("X-Multi", "1"), ("X-Multi", "2"))
    assert verdict.remove_headers == ("X-Spam",)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>502 Bad Gateway</html>", "not an rspamd answer"),
        (b'{"error": "Cannot parse message"}', "Cannot parse message"),
        (b'{"score": 1.0}', "without an action"),
        (b'{"action": 5}', "not an rspamd answer"),
    ],
)
def test_a_broken_answer_is_an_unavailable_scanner(body: bytes, problem: str) -> None:
    with pytest.raises(ScannerUnavailable, match=problem):
        parse_reply(body)


def test_the_envelope_goes_in_rspamds_headers_one_rcpt_per_recipient() -> None:
    headers = request_headers(ENVELOPE)
    assert headers.getall("Rcpt") == ["b@example.org", "c@example.net"]
    assert (headers["From"], headers["IP"], headers["Helo"]) == (
        "a@example.com",
        "192.0.2.7",
        "client.example",
    )
    assert (headers["User"], headers["Queue-Id"]) == ("alice", "abc123")
    relayed = request_headers(Envelope("", ("\u00fc@example.org",), "::1", "", "", "q"))
    assert "User" not in relayed  # no AUTH: rspamd must not take it for authenticated mail
    assert relayed["Helo"] == "unknown"
    assert relayed["Rcpt"].encode("latin-1").decode("utf-8") == "\u00fc@example.org"


@pytest.fixture
async def fake_rspamd() -> AsyncIterator[Callable[[object], asyncio.Future[str]]]:
    """Serve a handler on a loopback port; the URL of the server."""
    runners: list[web.AppRunner] = []

    async def serve(handler: object) -> str:
        app = web.Application()
        app.router.add_post("/checkv2", handler)  # type: ignore[arg-type]
        # A hanging handler is cancelled at cleanup instead of being waited for a minute.
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield serve  # type: ignore[misc]
    for runner in runners:
        await runner.cleanup()


async def test_the_message_and_envelope_reach_the_scanner(fake_rspamd: object) -> None:
    seen: dict[str, object] = {}

    async def handler(request: web.Request) -> web.Response:
        seen["body"] = await request.read()
        seen["rcpt"] = request.headers.getall("Rcpt")
        return web.Response(body=ANSWER, content_type="application/json")

    url = await fake_rspamd(handler)  # type: ignore[operator]
    client = RspamdClient(url, 5)
    try:
        verdict = await client.check(b"Subject: x\r\n\r\nbody\r\n", ENVELOPE)
    finally:
        await client.close()
    assert verdict.action == "add header"
    assert seen == {"body": b"Subject: x\r\n\r\nbody\r\n", "rcpt": list(ENVELOPE.rcpt_to)}


async def test_an_http_error_a_closed_connection_and_a_hang_are_unavailable(
    fake_rspamd: object,
) -> None:
    async def error(request: web.Request) -> web.Response:
        return web.Response(status=500, text="worker crashed")

    async def closes(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        return web.Response(body=ANSWER)

    async def hangs(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    cases = [(error, "HTTP 500: worker crashed"), (closes, "Error"), (hangs, "within 0.3s")]
    for handler, problem in cases:
        client = RspamdClient(await fake_rspamd(handler), 0.3)  # type: ignore[operator]
        try:
            with pytest.raises(ScannerUnavailable, match=problem):
                await client.check(b"Subject: x\r\n\r\n", ENVELOPE)
        finally:
            await client.close()


async def test_nothing_listening_is_unavailable_and_ping_says_no() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        client = RspamdClient(f"http://127.0.0.1:{port}", 2)
        try:
            assert await client.ping() is False
            with pytest.raises(ScannerUnavailable, match="Connect"):
                await client.check(b"Subject: x\r\n\r\n", ENVELOPE)
        finally:
            await client.close()

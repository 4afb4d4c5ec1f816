"""The tracking endpoints on the real bouncer stage: real HTTP requests (aiohttp client) to
the process port, the opened and clicked events read back from postline.events (embedded bus
and real Kafka)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import msgspec
import pytest

from services.bouncer.tracking.endpoint import PIXEL
from shared.wire.records import EventKind
from testing.buses import bus_of_kind
from testing.faultybus import FaultyBus
from tests.services.bouncer.tracking.conftest import (
    MSGID,
    RECIPIENT,
    TENANT,
    Tracked,
    running,
    token,
)

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
THUNDERBIRD = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.5.0"
APPLE_MAIL = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)
#: A URL with a query string and percent-encoded non-ASCII: the Location must be exactly it.
URL = "https://shop.example/caf%C3%A9/men%C3%BC?utm_source=mail&q=a%20b&x=%2F#top"


async def get(
    base: str, path: str, user_agent: str = CHROME, method: str = "GET", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    """One request; the status, the headers and the body (redirects not followed)."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            base + path,
            headers={"User-Agent": user_agent, **headers},
            allow_redirects=False,
            skip_auto_headers=["User-Agent"],
        ) as response,
    ):
        return response.status, dict(response.headers), await response.read()


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
async def on_either_bus(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Tracked]:
    async with running(request.param, request, tmp_path) as bouncer:
        yield bouncer


async def test_pixel_and_link_answer_and_publish_events(on_either_bus: Tracked) -> None:
    bouncer = on_either_bus
    before = time.time()
    status, headers, body = await get(bouncer.base, "/o/" + token(), THUNDERBIRD)
    assert (status, body) == (200, PIXEL)
    assert headers["Content-Type"] == "image/gif"
    assert "no-store" in headers["Cache-Control"] and "private" in headers["Cache-Control"]
    status, headers, body = await get(bouncer.base, "/c/" + token(2, URL), CHROME)
    assert status == 302
    assert headers["Location"] == URL
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    opened, clicked = sorted(await bouncer.events(2), key=lambda e: e.kind != EventKind.OPENED)
    after = time.time()
    common = {
        "message_id": MSGID,
        "recipient": RECIPIENT,
        "domain": "customer.example",
        "tenant": TENANT,
        "stage": "bouncer",
        "client_ip": "127.0.0.1",
        "machine": False,
    }
    assert opened.kind is EventKind.OPENED
    assert {k: getattr(opened, k) for k in common} == common
    assert (opened.agent, opened.url, opened.link) == ("mail_client", "", 0)
    assert clicked.kind is EventKind.CLICKED
    assert {k: getattr(clicked, k) for k in common} == common
    assert (clicked.agent, clicked.url, clicked.link) == ("browser", URL, 2)
    assert before <= opened.at <= after and before <= clicked.at <= after
    assert bouncer.metric("postline_bouncer_opens_total", agent="mail_client", who="human") == 1
    assert bouncer.metric("postline_bouncer_clicks_total", agent="browser", who="human") == 1


def altered(text: str) -> str:
    """The token with its URL changed and the HMAC left as it was (an open-redirect try)."""
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    fields = msgspec.msgpack.decode(raw[12:])
    fields[-1] = "https://evil.example/"
    forged = raw[:12] + msgspec.msgpack.encode(fields)
    return base64.urlsafe_b64encode(forged).decode().rstrip("=")


async def test_forged_altered_or_truncated_tokens_are_404_without_event(
    tracked: Tracked,
) -> None:
    good = token(1, URL)
    flipped = good[:20] + ("A" if good[20] != "A" else "B") + good[21:]
    bad = [
        token(1, URL, secret=b"not-the-secret-0123456789"),
        altered(good),
        flipped,
        good[:-3],
        good[:10],
        "",
        "not a token at all",
        good + "/extra",
    ]
    for text in bad:
        status, headers, body = await get(tracked.base, "/c/" + text)
        assert status == 404, text
        assert "Location" not in headers
        assert body == b"unknown or invalid link\n"
    status, _, _ = await get(tracked.base, "/o/" + token(secret=b"not-the-secret-0123456789"))
    assert status == 404
    assert tracked.metric(
        "postline_bouncer_tracking_refused_total", endpoint="click", reason="forged"
    ) == len(bad)
    assert (
        tracked.metric("postline_bouncer_tracking_refused_total", endpoint="open", reason="forged")
        == 1
    )
    # One good open after them: when its event is there, nothing else was published.
    assert (await get(tracked.base, "/o/" + token()))[0] == 200
    (event,) = await tracked.events(1)
    assert event.kind is EventKind.OPENED


async def test_only_http_urls_are_redirected_to(tracked: Tracked) -> None:
    for url in ("javascript:alert(document.cookie)", "data:text/html,<b>x</b>", "//evil.example"):
        status, headers, _ = await get(tracked.base, "/c/" + token(1, url))
        assert status == 404 and "Location" not in headers
    assert (
        tracked.metric(
            "postline_bouncer_tracking_refused_total", endpoint="click", reason="bad_url"
        )
        == 3
    )
    # A pixel's token is no link, and a link's token no pixel.
    assert (await get(tracked.base, "/c/" + token()))[0] == 404
    assert (await get(tracked.base, "/o/" + token(1, URL)))[0] == 404
    assert (
        tracked.metric(
            "postline_bouncer_tracking_refused_total", endpoint="click", reason="wrong_endpoint"
        )
        == tracked.metric(
            "postline_bouncer_tracking_refused_total", endpoint="open", reason="wrong_endpoint"
        )
        == 1
    )
    assert (await get(tracked.base, "/o/" + token()))[0] == 200
    (event,) = await tracked.events(1)  # the pixel's only
    assert event.kind is EventKind.OPENED


async def test_scanners_head_prefetch_and_early_clicks_are_machine(tracked: Tracked) -> None:
    mimecast = "Mimecast-URL-Protect/1.0"
    assert (await get(tracked.base, "/c/" + token(1, URL), mimecast))[0] == 302
    status, headers, body = await get(tracked.base, "/c/" + token(2, URL), method="HEAD")
    assert (status, headers["Location"], body) == (302, URL, b"")
    status, headers, body = await get(tracked.base, "/o/" + token(), method="HEAD")
    assert (status, headers["Content-Type"], body) == (200, "image/gif", b"")
    assert (await get(tracked.base, "/o/" + token(), "Mozilla/5.0"))[0] == 200  # Apple MPP
    # A browser's click a second after the message was signed: a gateway's sandbox.
    assert (await get(tracked.base, "/c/" + token(3, URL, sent_ago=1), CHROME))[0] == 302
    events = await tracked.events(5)
    found = sorted((e.kind.value, e.link, e.agent, e.machine) for e in events)
    assert found == [
        ("clicked", 1, "scanner", True),
        ("clicked", 2, "scanner", True),
        ("clicked", 3, "browser", True),
        ("opened", 0, "apple_mpp", True),
        ("opened", 0, "scanner", True),
    ]
    assert tracked.metric("postline_bouncer_clicks_total", agent="scanner", who="machine") == 2


async def test_forwarded_for_is_ignored_unless_from_a_trusted_proxy(tracked: Tracked) -> None:
    # The default: no trusted proxies. The header is anyone's to write.
    spoofed = {"X-Forwarded-For": "17.58.1.2"}
    assert (await get(tracked.base, "/o/" + token(), APPLE_MAIL, **spoofed))[0] == 200
    (event,) = await tracked.events(1)
    assert (event.client_ip, event.agent, event.machine) == ("127.0.0.1", "mail_client", False)


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async with running(
        "embedded", request, tmp_path, 'trusted_proxies = ["127.0.0.0/8"]\n'
    ) as bouncer:
        # The ingress (127.0.0.1 here) appended the address it saw to what the client sent.
        hops = {"X-Forwarded-For": "198.51.100.99, 17.58.1.2"}
        assert (await get(bouncer.base, "/o/" + token(), APPLE_MAIL, **hops))[0] == 200
        hops = {"X-Forwarded-For": "17.58.1.2, 203.0.113.7"}
        assert (await get(bouncer.base, "/c/" + token(1, URL), CHROME, **hops))[0] == 302
        events = sorted(await bouncer.events(2), key=lambda e: e.kind != EventKind.OPENED)
        found = [(e.kind.value, e.client_ip, e.agent, e.machine) for e in events]
        assert found == [
            ("opened", "17.58.1.2", "apple_mpp", True),  # Apple's network: MPP's prefetch
            ("clicked", "203.0.113.7", "browser", False),
        ]


async def test_a_failing_bus_never_fails_a_click(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    faulty = FaultyBus(bus_of_kind("embedded", request, tmp_path, "bouncer-tracking"))
    async with running("embedded", request, tmp_path, "", bus=faulty) as bouncer:
        faulty.switch.failing = True
        status, headers, _ = await get(bouncer.base, "/c/" + token(1, URL))
        assert (status, headers["Location"]) == (302, URL)
        assert (await get(bouncer.base, "/o/" + token()))[0] == 200
        end = time.monotonic() + 60
        while bouncer.metric("postline_bouncer_tracking_events_dropped_total", reason="bus") < 2:
            assert time.monotonic() < end, "the failed publishes were never counted"
            await asyncio.sleep(0.05)
        faulty.switch.failing = False
        assert (await get(bouncer.base, "/o/" + token(), THUNDERBIRD))[0] == 200
        (event,) = await bouncer.events(1)
        assert (event.kind, event.agent) == (EventKind.OPENED, "mail_client")

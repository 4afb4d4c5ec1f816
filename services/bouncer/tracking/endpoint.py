"""The open pixel and the tracked-link redirect on the process's (public) HTTP port.

Owns ``GET``/``HEAD <open_path><token>`` (200, a transparent 1x1 GIF, never cached) and
``GET``/``HEAD <click_path><token>`` (302 to the URL inside the token, no referrer). The
token (``shared.wire.tokens``, written by the signer) carries the message, recipient,
tenant, link number and URL under an HMAC, so no database is asked and the redirect can
only lead to a URL that was in the message (no open redirect); a token that does not
verify, or whose URL is not http(s), is a plain 404, counted, with no event.

Each request that verifies makes one ``opened`` or ``clicked`` event (user agent class,
machine flag, client address) handed to the publisher without waiting: the answer never
depends on the bus. Who the agent is: ``agents.py``; timing: ``machine.py``; the client
address behind the ingress: ``clientip.py``.
"""

from __future__ import annotations

from typing import Literal

from services.bouncer.metrics import TrackingMetrics
from services.bouncer.tracking.agents import MACHINE_AGENTS, classify_agent
from services.bouncer.tracking.clientip import client_address
from services.bouncer.tracking.config import TrackingConfig
from services.bouncer.tracking.machine import early_click
from services.bouncer.tracking.publisher import TrackingPublisher
from shared.errors import ForgedToken
from shared.runtime.http import HttpRequest, HttpResponse, Router
from shared.wire.records import Event, EventKind, now
from shared.wire.tokens import TrackingToken, parse_tracking_token

#: A transparent 1x1 GIF (GIF89a spec, 43 bytes): header; logical screen 1x1 with a global
#: colour table of 2 entries; the table (black, white); a graphic control extension making
#: colour 0 transparent; an image descriptor 1x1 at 0,0; LZW data (minimum code size 2, one
#: 2-byte block: clear code, pixel 0, end code); the trailer.
PIXEL = (
    b"GIF89a"
    b"\x01\x00\x01\x00\x80\x00\x00"
    b"\x00\x00\x00\xff\xff\xff"
    b"\x21\xf9\x04\x01\x00\x00\x00\x00"
    b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00"
    b"\x02\x02\x44\x01\x00"
    b"\x3b"
)
#: Every open must reach us: no browser, proxy or CDN may answer from a cache.
PIXEL_HEADERS = {"Cache-Control": "no-store, no-cache, private, max-age=0", "Pragma": "no-cache"}
#: A redirect is per recipient (never cached); the tracking URL, which holds the token,
#: must not leak to the destination site in Referer.
REDIRECT_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
NOT_FOUND = HttpResponse(404, b"unknown or invalid link\n", headers={"Cache-Control": "no-store"})
#: Code points kept as they are in a Location header: printable ASCII but space.
_KEPT_AS_IS = frozenset(range(0x21, 0x7F))

Endpoint = Literal["open", "click"]


class TrackingEndpoint:
    """Handlers for the pixel and link URLs the signer writes."""

    def __init__(
        self,
        config: TrackingConfig,
        secret: bytes,
        publisher: TrackingPublisher,
        metrics: TrackingMetrics,
    ) -> None:
        self._config = config
        self._secret = secret
        self._publisher = publisher
        self._metrics = metrics
        self._trusted = config.networks("trusted_proxies")
        self._apple = config.networks("apple_networks")

    def register(self, router: Router) -> None:
        """Add GET and HEAD below both prefixes."""
        for method in ("GET", "HEAD"):
            router.add(method, self._config.open_path, self.open)
            router.add(method, self._config.click_path, self.click)

    async def open(self, request: HttpRequest) -> HttpResponse:
        """The pixel: verify, record the open, answer the GIF."""
        token = self._token(request, "open", self._config.open_path)
        if token is None:
            return NOT_FOUND
        if token.link != 0:
            self._metrics.refused("open", "wrong_endpoint")
            return NOT_FOUND
        self._record(EventKind.OPENED, token, request)
        return HttpResponse(200, PIXEL, content_type="image/gif", headers=PIXEL_HEADERS)

    async def click(self, request: HttpRequest) -> HttpResponse:
        """A link: verify, record the click, redirect to the message's URL."""
        token = self._token(request, "click", self._config.click_path)
        if token is None:
            return NOT_FOUND
        if token.link == 0:
            self._metrics.refused("click", "wrong_endpoint")
            return NOT_FOUND
        location = redirect_target(token.url)
        if location is None:
            self._metrics.refused("click", "bad_url")
            return NOT_FOUND
        self._record(EventKind.CLICKED, token, request)
        return HttpResponse(302, b"", headers={"Location": location, **REDIRECT_HEADERS})

    def _token(self, request: HttpRequest, endpoint: Endpoint, prefix: str) -> TrackingToken | None:
        try:
            return parse_tracking_token(self._secret, request.path[len(prefix) :])
        except ForgedToken:
            self._metrics.refused(endpoint, "forged")
            return None

    def _record(self, kind: EventKind, token: TrackingToken, request: HttpRequest) -> None:
        """Build the event and hand it to the publisher (no waiting)."""
        at = now()
        client = client_address(
            request.remote, request.headers.get("x-forwarded-for", ""), self._trusted
        )
        endpoint: Endpoint = "click" if kind is EventKind.CLICKED else "open"
        agent = classify_agent(
            endpoint, request.method, request.headers.get("user-agent", ""), client, self._apple
        )
        machine = agent in MACHINE_AGENTS or (
            kind is EventKind.CLICKED
            and early_click(at, token.sent_at, float(self._config.early_click))
        )
        self._publisher.emit(
            Event(
                kind=kind,
                message_id=token.message_id,
                at=at,
                recipient=token.recipient,
                domain=token.recipient.rpartition("@")[2].lower(),
                tenant=token.tenant,
                stage="bouncer",
                url=token.url if kind is EventKind.CLICKED else "",
                link=token.link,
                agent=agent.value,
                machine=machine,
                client_ip="" if client is None else str(client),
            )
        )


def redirect_target(url: str) -> str | None:
    """The Location for a token's URL, or ``None`` when it must not be redirected to.

    Only absolute http and https URLs with a host: ``javascript:``, ``data:``, relative and
    scheme-relative URLs never leave here. Control characters (a header injection) refuse
    the URL; spaces and non-ASCII characters (an IRI as written in the HTML) are
    percent-encoded as UTF-8 (RFC 3987 3.1), everything else is kept exactly.
    """
    lowered = url[:8].lower()
    scheme_end = 7 if lowered.startswith("http://") else 8 if lowered == "https://" else 0
    if not scheme_end or url[scheme_end : scheme_end + 1] in ("", "/", "\\", "?", "#"):
        return None
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in url):
        return None
    return "".join(char if ord(char) in _KEPT_AS_IS else _percent(char) for char in url)


def _percent(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))

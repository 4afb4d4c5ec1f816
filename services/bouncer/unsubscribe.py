"""The RFC 8058 one-click unsubscribe endpoint on the process's (public) HTTP port.

Owns ``POST <unsubscribe_path><token>`` with the body ``List-Unsubscribe=One-Click``
(RFC 8058 3.2): verify the HMAC token, then read the (small) body, publish the UNSUBSCRIBED
event and the suppression, answer 200 at once, no login, no second click. ``GET`` shows a
plain page with a button that makes the same POST: a GET must never unsubscribe, because
mail scanners follow links (RFC 8058 4). What a suppression means is ``suppress.py``'s.
"""

from __future__ import annotations

import html
import time
from urllib.parse import parse_qs

from services.bouncer.outcome import Outcomes
from shared.bus.base import Bus
from shared.errors import BusError, ForgedToken
from shared.runtime.http import HttpRequest, HttpResponse, Router
from shared.wire.tokens import parse_unsubscribe_token

HTML = "text/html; charset=utf-8"
#: RFC 8058 3.1: the body is "List-Unsubscribe=One-Click" (a form may add a few fields).
MAX_BODY = 8 * 1024

DONE = HttpResponse(200, b"You are unsubscribed.\n")
BAD_BODY = HttpResponse(400, b"expected List-Unsubscribe=One-Click\n")
UNKNOWN_LINK = HttpResponse(404, b"unknown or invalid unsubscribe link\n")
TRY_LATER = HttpResponse(
    503, b"temporarily unavailable, try again\n", headers={"Retry-After": "30"}
)


class UnsubscribeEndpoint:
    """Handlers for the one-click URL the signer writes."""

    def __init__(
        self, prefix: str, secret: bytes, outcomes: Outcomes, bus: Bus, publish_timeout: float
    ) -> None:
        self._prefix = prefix
        self._secret = secret
        self._outcomes = outcomes
        self._bus = bus
        self._timeout = publish_timeout

    def register(self, router: Router) -> None:
        """Add the POST and GET routes below the prefix."""
        router.add("POST", self._prefix, self.post, max_body=MAX_BODY)
        router.add("GET", self._prefix, self.get)

    async def post(self, request: HttpRequest) -> HttpResponse:
        """One-click: verify, suppress, 200."""
        try:
            token = parse_unsubscribe_token(self._secret, request.path[len(self._prefix) :])
        except ForgedToken:
            self._outcomes.metrics.rejected.labels("forged").inc()
            return UNKNOWN_LINK
        if not _is_one_click(await request.body()):  # read only for a verified link
            return BAD_BODY
        records = self._outcomes.for_unsubscribe(token, time.time(), via="http")
        try:
            await self._bus.publish(records, timeout=self._timeout)
        except (BusError, TimeoutError):
            return TRY_LATER  # the mailbox provider retries; nothing was half done
        return DONE

    async def get(self, request: HttpRequest) -> HttpResponse:
        """A plain confirmation page whose button POSTs the one-click body."""
        token = request.path[len(self._prefix) :]
        try:
            parsed = parse_unsubscribe_token(self._secret, token)
        except ForgedToken:
            return UNKNOWN_LINK
        address = html.escape(parsed.recipient)
        action = html.escape(self._prefix + token, quote=True)
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>Unsubscribe</title></head>"
            f"<body><p>Unsubscribe <b>{address}</b> from these messages?</p>"
            f"<form method='post' action='{action}'>"
            "<input type='hidden' name='List-Unsubscribe' value='One-Click'>"
            "<button type='submit'>Unsubscribe</button></form></body></html>\n"
        )
        return HttpResponse(200, page.encode(), content_type=HTML)


def _is_one_click(body: bytes) -> bool:
    # RFC 8058 3.1: the POST body is "List-Unsubscribe=One-Click" (form-encoded, maybe
    # alongside other fields a form adds).
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return "One-Click" in fields.get("List-Unsubscribe", [])

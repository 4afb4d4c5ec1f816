"""The HTTP client of the webhooks stage: one POST, its outcome as a value.

One ``aiohttp.ClientSession`` per stage with: a total and a connect timeout per request;
certificates verified (the system's trust store, or ``ca_file``); no proxy from the
environment; no redirects (a 3xx is a failure: following one would bypass the SSRF check of
the URL, and a receiver that moved should be changed by its tenant); the SSRF guard as the
connector's resolver (``shared.netguard``). Answers are read only up to a few KiB (a receiver's
body is never used, only its status).

Outcomes are classified into a bounded ``result`` (the metrics label): ``ok`` (2xx),
``http_3xx``, ``http_4xx``, ``http_5xx``, ``timeout``, ``connect`` (refused, reset, DNS),
``tls`` (certificate or handshake), ``refused`` (the SSRF rules) and ``secret``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from shared.errors import UrlInvalid, UrlRefused
from shared.netguard import GuardedResolver, Policy, check_url

#: Most bytes of an answer read (to keep the connection reusable, not to use them).
_MAX_ANSWER = 4096

OK = "ok"
#: ``secret``: the endpoint's sealed secret does not open (the KEK files), no request made.
RESULTS = (
    "ok",
    "http_3xx",
    "http_4xx",
    "http_5xx",
    "timeout",
    "connect",
    "tls",
    "refused",
    "secret",
)


@dataclass(frozen=True)
class Outcome:
    """What one request came to."""

    result: str  # one of RESULTS
    status: int = 0  # the HTTP status (0 without an answer)
    error: str = ""  # why it failed, for the retry record and the logs

    @property
    def ok(self) -> bool:
        """The receiver acknowledged (2xx)."""
        return self.result == OK


def classify_status(status: int) -> Outcome:
    """The outcome of an answer with ``status``."""
    if 200 <= status < 300:
        return Outcome(OK, status)
    family = "http_3xx" if status < 400 else "http_4xx" if status < 500 else "http_5xx"
    return Outcome(family, status, f"HTTP {status}")


def ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """Certificates verified against ``ca_file`` when given, else the system's store."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)


class WebhookClient:
    """POSTs webhooks; see the module docstring."""

    def __init__(
        self,
        policy: Policy,
        *,
        timeout: float,
        connect_timeout: float,
        ca_file: Path | None = None,
        user_agent: str = "Postline-Webhooks/1",
        limit: int = 1000,
    ) -> None:
        self.policy = policy
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._ssl = ssl_context(ca_file)
        self._user_agent = user_agent
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the session (inside the running loop)."""
        connector = aiohttp.TCPConnector(
            ssl=self._ssl, resolver=GuardedResolver(self.policy), limit=self._limit
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, trust_env=False
        )

    async def close(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        """POST ``body`` to ``url``; never raises for the receiver's or the network's faults."""
        if self._session is None:
            raise RuntimeError("WebhookClient.start was not called")
        try:
            check_url(url, self.policy)
        except (UrlInvalid, UrlRefused) as exc:
            return Outcome("refused", 0, str(exc))
        request_headers = {
            "content-type": "application/json",
            "user-agent": self._user_agent,
            **headers,
        }
        try:
            async with self._session.post(
                url, data=body, headers=request_headers, allow_redirects=False
            ) as answer:
                await answer.content.read(_MAX_ANSWER)
                return classify_status(answer.status)
        except UrlRefused as exc:
            return Outcome("refused", 0, str(exc))
        except TimeoutError:
            return Outcome("timeout", 0, "no answer in time")
        except aiohttp.ClientSSLError as exc:
            return Outcome("tls", 0, f"TLS: {exc}")
        except (aiohttp.ClientError, OSError) as exc:
            return Outcome("connect", 0, f"{type(exc).__name__}: {exc}")

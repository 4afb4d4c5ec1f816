"""POSTing a report to an ``https:`` rua (RFC 8460 5.4).

Owns one aiohttp session: certificates validated (against ``ca_file`` when configured,
else the system's store), a total timeout, redirects not followed (RFC 8460 5.4 does not
ask us to, and following one would let a report go where the domain's DNS did not say),
no proxy from the environment. A 2xx answer is success; anything else raises
:class:`ReportNotPosted` with the reason.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp

from services.bouncer.tlsrpt.report import MEDIA_TYPE

_MAX_ANSWER = 64 * 1024  # read (and drop) at most this much of the receiver's answer


class ReportNotPosted(Exception):
    """The receiver did not accept the report (status, TLS, network or timeout)."""


class HttpsReporter:
    """POSTs reports; :meth:`start` inside the running loop, :meth:`close` at the end."""

    def __init__(self, *, timeout: float, ca_file: Path | None, user_agent: str) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ssl = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the session."""
        connector = aiohttp.TCPConnector(ssl=self._ssl, limit=16)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, trust_env=False
        )

    async def close(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, body: bytes) -> None:
        """POST the gzip report ``body`` to ``url``; raises :class:`ReportNotPosted`."""
        if self._session is None:
            raise RuntimeError("HttpsReporter.start was not called")
        headers = {"content-type": MEDIA_TYPE, "user-agent": self._user_agent}
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as answer:
                await answer.content.read(_MAX_ANSWER)
                if not 200 <= answer.status < 300:
                    raise ReportNotPosted(f"HTTP {answer.status}")
        except TimeoutError as exc:
            raise ReportNotPosted("no answer in time") from exc
        except aiohttp.ClientSSLError as exc:
            raise ReportNotPosted(f"TLS: {exc}") from exc
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise ReportNotPosted(f"{exc.__class__.__name__}: {exc}") from exc

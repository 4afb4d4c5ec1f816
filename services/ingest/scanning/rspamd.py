"""rspamd's HTTP protocol: one message to a normal worker's ``/checkv2``, its verdict back.

The envelope goes in the request headers rspamd reads (``From``, one ``Rcpt`` per recipient,
``IP``, ``Helo``, ``User``, ``Queue-Id``, ``Hostname``): with ``User`` set rspamd treats the
message as authenticated outbound mail and applies its outbound rules (no SPF/DMARC checks of
our own client, the outbound rate and reply rules). The answer is JSON (rspamd's "protocol
v2"); anything else, a refused connection, a timeout or an HTTP error raises
:class:`ScannerUnavailable`, which the scanner handles by its fault policy.

This module decides nothing about the message (``decide.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
from multidict import CIMultiDict

#: rspamd answers /ping on every worker with this body.
_PONG = b"pong"


class ScannerUnavailable(Exception):
    """The scanner did not give a usable verdict (down, too slow, a broken answer)."""


@dataclass(frozen=True)
class Envelope:
    """What rspamd is told about a message besides its bytes."""

    mail_from: str
    rcpt_to: tuple[str, ...]
    ip: str
    helo: str
    user: str  # the AUTH login or API key id; "" when relayed without AUTH
    queue_id: str  # our message id: rspamd logs it, so its log and ours meet
    hostname: str = ""  # the client's host name, when known


@dataclass(frozen=True)
class Verdict:
    """rspamd's answer, reduced to what Postline uses."""

    action: str  # "no action", "add header", "rewrite subject", "greylist", "soft reject", "reject"
    score: float
    required: float  # the score of the action rspamd chose (its reject threshold for "reject")
    symbols: dict[str, float]  # every symbol that fired, with its score
    add_headers: tuple[tuple[str, str], ...] = ()  # the milter_headers module's additions
    remove_headers: tuple[str, ...] = ()
    subject: str = ""  # the new Subject, for "rewrite subject"
    skipped: bool = False  # rspamd skipped the message (its own settings or size limit)
    thresholds: dict[str, float] = field(default_factory=dict)

    def top(self, count: int) -> dict[str, float]:
        """The ``count`` symbols with the largest absolute scores, largest first."""
        ranked = sorted(self.symbols.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
        return {name: round(score, 3) for name, score in ranked[:count]}


class _Symbol(msgspec.Struct):
    score: float = 0.0


class _Milter(msgspec.Struct):
    add_headers: dict[str, Any] = {}
    remove_headers: dict[str, Any] = {}


class _Reply(msgspec.Struct):
    action: str = ""
    score: float = 0.0
    required_score: float = 0.0
    symbols: dict[str, _Symbol] = {}
    thresholds: dict[str, float] = {}
    subject: str = ""
    milter: _Milter | None = None
    is_skipped: bool = False
    error: str = ""


_DECODER = msgspec.json.Decoder(_Reply)


def parse_reply(body: bytes) -> Verdict:
    """The verdict in a ``/checkv2`` answer; :class:`ScannerUnavailable` naming what is wrong
    with an answer that is not one."""
    try:
        reply = _DECODER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ScannerUnavailable(f"not an rspamd answer: {exc}") from exc
    if reply.error:
        raise ScannerUnavailable(f"rspamd: {reply.error[:200]}")
    if not reply.action:
        raise ScannerUnavailable("rspamd answered without an action")
    milter = reply.milter or _Milter()
    return Verdict(
        action=reply.action,
        score=reply.score,
        required=reply.required_score,
        symbols={name: s.score for name, s in reply.symbols.items()},
        add_headers=tuple(_added(milter.add_headers)),
        remove_headers=tuple(milter.remove_headers),
        subject=reply.subject,
        skipped=reply.is_skipped,
        thresholds=dict(reply.thresholds),
    )


def _added(headers: dict[str, Any]) -> list[tuple[str, str]]:
    # milter_headers gives a value as a string, {"value": ..., "order": ...} or a list of those.
    out: list[tuple[str, str]] = []
    for name, spec in headers.items():
        for item in spec if isinstance(spec, list) else [spec]:
            value = item.get("value") if isinstance(item, dict) else item
            if isinstance(value, str):
                out.append((name, value))
    return out


def request_headers(envelope: Envelope) -> CIMultiDict[str]:
    """The HTTP headers that carry ``envelope`` (one ``Rcpt`` per recipient)."""
    headers: CIMultiDict[str] = CIMultiDict()
    headers["From"] = envelope.mail_from
    for rcpt in envelope.rcpt_to:
        headers.add("Rcpt", rcpt)
    headers["IP"] = envelope.ip
    headers["Helo"] = envelope.helo or "unknown"
    headers["Queue-Id"] = envelope.queue_id
    if envelope.user:
        headers["User"] = envelope.user
    if envelope.hostname:
        headers["Hostname"] = envelope.hostname
    # HTTP header values are Latin-1 on the wire; a UTF-8 address (SMTPUTF8) goes as its
    # UTF-8 bytes read as Latin-1, which is what rspamd reads back as UTF-8.
    for key, value in list(headers.items()):
        if not value.isascii():
            headers.popone(key)
            headers.add(key, value.encode("utf-8").decode("latin-1"))
    return headers


class RspamdClient:
    """A connection pool to one rspamd normal worker."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout,
                # No proxy from the environment, no cookies: a scanner is a local service.
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        """Close the pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def ping(self) -> bool:
        """Whether the worker answers ``/ping``."""
        try:
            async with self._open().get(f"{self.url}/ping") as response:
                return response.status == 200 and (await response.read()).strip() == _PONG
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def check(self, data: bytes, envelope: Envelope) -> Verdict:
        """rspamd's verdict on ``data``; :class:`ScannerUnavailable` when there is none."""
        try:
            async with self._open().post(
                f"{self.url}/checkv2", data=data, headers=request_headers(envelope)
            ) as response:
                body = await response.read()
                if response.status != 200:
                    text = body[:200].decode("utf-8", errors="replace")
                    raise ScannerUnavailable(f"rspamd answered HTTP {response.status}: {text}")
        except TimeoutError as exc:
            raise ScannerUnavailable(f"no answer within {self.timeout.total:g}s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ScannerUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return parse_reply(body)

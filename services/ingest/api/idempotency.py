"""``Idempotency-Key``: a retried request gets the first answer instead of sending again.

The IETF's draft-ietf-httpapi-idempotency-key-header (and Stripe's API before it): a client
that did not get an answer (a timeout, a dropped connection) sends the same request again
with the same key, and the server answers what it answered the first time. Per tenant (two
tenants may pick the same key), for ``ingest.api.idempotency_ttl`` (24 hours by default).

A key is first *claimed* with the request's fingerprint (a hash of the endpoint and body),
atomically, so of two concurrent requests with one key exactly one proceeds; the other gets
``409`` while the first is in progress (the draft's answer), and a request reusing a key for
a different body gets ``422``. When the first finishes, a ``202`` is *completed* (kept and
replayed from then on) and anything else *released*: a refusal or a ``503`` is not a result
to repeat, the client may fix the request or retry, with the same key, and send once. A
claim whose request never finished (the process died) lapses after :data:`CLAIM_TTL`; a
retry in that window gets 409, after it the request runs again (the one case, besides a
replica dying between the bus's acknowledgement and the answer being kept, where a message
may go twice, as an SMTP client's retry after a lost 250 would).

Two stores: :class:`LocalStore` in this process (``[limits] backend = "local"``: the
embedded bus, one ingest), and ``RedisStore`` (``idempotency_redis.py``, with ``backend =
"redis"``), shared by every replica so a retry that lands on another replica is still seen;
``listener.open_store`` picks one.
:class:`GuardedStore` applies ``limits.on_redis_failure`` to Redis trouble: ``open`` uses the
local store meanwhile (correct within one replica), ``closed`` answers 503.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import msgspec

from shared.errors import PostlineError

#: How long a claim holds a key while its request runs: longer than any request may take
#: (the HTTP server's handler timeout, 30 s), so it never lapses under a running request.
CLAIM_TTL = 120.0

ClaimState = Literal["new", "done", "busy", "mismatch"]


class IdempotencyUnavailable(PostlineError):
    """The shared store (Redis) did not answer; with ``on_redis_failure = "closed"`` the
    request is answered 503 (nothing was sent)."""


class Stored(msgspec.Struct, frozen=True):
    """A kept answer."""

    status: int
    body: bytes
    content_type: str


class Entry(msgspec.Struct, frozen=True):
    """What is kept under a key: a claim (``answer`` None) or a finished answer."""

    fingerprint: str
    token: str
    answer: Stored | None = None


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a key: ``new`` (go on, then complete or release with
    ``token``), ``done`` (replay ``answer``), ``busy`` (another request holds it) or
    ``mismatch`` (the key was used for another request)."""

    state: ClaimState
    token: str = ""
    answer: Stored | None = None


def fingerprint(endpoint: str, body: bytes) -> str:
    """The request's fingerprint: SHA-256 of its endpoint and body."""
    return hashlib.sha256(endpoint.encode() + b"\0" + body).hexdigest()


def new_token() -> str:
    """A claim's token (who may complete or release it)."""
    return secrets.token_hex(12)


def outcome(entry: Entry | None, fingerprint: str) -> Claim | None:
    """What a found entry means for a request with ``fingerprint``; ``None``: no entry."""
    if entry is None:
        return None
    if entry.fingerprint != fingerprint:
        return Claim("mismatch")
    if entry.answer is None:
        return Claim("busy")
    return Claim("done", answer=entry.answer)


class Store(Protocol):
    """Where claims and answers are kept."""

    async def claim(self, scope: str, key: str, fingerprint: str) -> Claim:
        """Claim ``key`` of ``scope`` (a tenant) for a request, or say why not."""
        ...

    async def complete(self, scope: str, key: str, token: str, answer: Stored) -> None:
        """Keep ``answer`` for the claim ``token`` of ``key``."""
        ...

    async def release(self, scope: str, key: str, token: str) -> None:
        """Drop the claim ``token`` of ``key`` (the request left no answer to repeat)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class LocalStore:
    """Claims and answers in this process: exact for one replica (one event loop, no
    await between the lookup and the claim), bounded to ``max_entries`` (oldest out)."""

    def __init__(
        self, ttl: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Entry]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def claim(self, scope: str, key: str, fingerprint: str) -> Claim:
        """See :meth:`Store.claim`."""
        name, now = _name(scope, key), self._clock()
        found = self._entries.get(name)
        if found is not None and found[0] <= now:
            del self._entries[name]
            found = None
        known = outcome(found[1] if found else None, fingerprint)
        if known is not None:
            return known
        while len(self._entries) >= self.max_entries:
            self._entries.popitem(last=False)
        token = new_token()
        self._entries[name] = (now + CLAIM_TTL, Entry(fingerprint, token))
        return Claim("new", token)

    async def complete(self, scope: str, key: str, token: str, answer: Stored) -> None:
        """See :meth:`Store.complete`."""
        name = _name(scope, key)
        found = self._entries.get(name)
        if found is not None and found[1].token == token:
            entry = Entry(found[1].fingerprint, token, answer)
            self._entries[name] = (self._clock() + self.ttl, entry)
            self._entries.move_to_end(name)

    async def release(self, scope: str, key: str, token: str) -> None:
        """See :meth:`Store.release`."""
        name = _name(scope, key)
        found = self._entries.get(name)
        if found is not None and found[1].token == token:
            del self._entries[name]

    async def close(self) -> None:
        """Nothing to release."""


class GuardedStore:
    """A shared store with ``limits.on_redis_failure`` applied (see the module docstring):
    ``fallback`` (a :class:`LocalStore`) takes over a call the shared store failed, or,
    without one, :class:`IdempotencyUnavailable` reaches the caller (503)."""

    def __init__(
        self,
        primary: Store,
        fallback: LocalStore | None,
        log: logging.Logger,
        on_failure: Callable[[], None] = lambda: None,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.log = log
        self._on_failure = on_failure  # counts each call the shared store failed
        #: Claims made in the fallback, by token (oldest out past the fallback's bound).
        self._on_fallback: OrderedDict[str, None] = OrderedDict()

    async def claim(self, scope: str, key: str, fingerprint: str) -> Claim:
        """See :meth:`Store.claim`."""
        try:
            return await self.primary.claim(scope, key, fingerprint)
        except IdempotencyUnavailable as exc:
            fallback = self._fallback(exc)
            claim = await fallback.claim(scope, key, fingerprint)
            if claim.token:
                self._on_fallback[claim.token] = None
                while len(self._on_fallback) > fallback.max_entries:
                    self._on_fallback.popitem(last=False)
            return claim

    async def complete(self, scope: str, key: str, token: str, answer: Stored) -> None:
        """See :meth:`Store.complete`."""
        if self._on_fallback.pop(token, 0) is None:
            assert self.fallback is not None
            await self.fallback.complete(scope, key, token, answer)
            return
        try:
            await self.primary.complete(scope, key, token, answer)
        except IdempotencyUnavailable as exc:
            # The message is sent; its answer could not be kept: the claim lapses.
            self._on_failure()
            self.log.warning("idempotency answer not kept", extra={"error": str(exc)})

    async def release(self, scope: str, key: str, token: str) -> None:
        """See :meth:`Store.release`."""
        if self._on_fallback.pop(token, 0) is None:
            assert self.fallback is not None
            await self.fallback.release(scope, key, token)
            return
        try:
            await self.primary.release(scope, key, token)
        except IdempotencyUnavailable as exc:
            self._on_failure()
            self.log.warning("idempotency claim not released", extra={"error": str(exc)})

    async def close(self) -> None:
        """Close the shared store's connections."""
        await self.primary.close()

    def _fallback(self, exc: IdempotencyUnavailable) -> LocalStore:
        self._on_failure()
        if self.fallback is None:
            raise exc
        self.log.warning(
            "idempotency store unavailable, keeping keys in this process",
            extra={"error": str(exc)},
        )
        return self.fallback


def _name(scope: str, key: str) -> str:
    """The stored name of ``key`` of ``scope``: a hash, so any key is a safe, short name."""
    return hashlib.sha256(scope.encode() + b"\0" + key.encode()).hexdigest()

"""Idempotency keys in Redis, shared by every ingest replica (``[limits] backend = "redis"``).

One key per tenant and Idempotency-Key (``<limits.key_prefix>idempotency:<sha256>``), its
value an ``Entry`` (msgpack): a claim while the request runs, the answer once it is kept,
each with its expiry (``PX``). Each operation is one Lua script, atomic in Redis, so two
replicas claiming one key at once cannot both win, and only the claim's holder (by its
token) completes or releases it. Every Redis failure (refused connection, timeout, an error
reply) becomes :class:`~services.ingest.api.idempotency.IdempotencyUnavailable`; what then
happens is ``GuardedStore``'s business.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import msgspec
from redis.exceptions import RedisError

from services.ingest.api.idempotency import (
    CLAIM_TTL,
    Claim,
    Entry,
    IdempotencyUnavailable,
    Stored,
    new_token,
    outcome,
)
from shared.limits.redis_limiter import redis_client

#: Claim: the entry found, or nothing after setting ARGV[1] for ARGV[2] ms.
_CLAIM = """
local found = redis.call('GET', KEYS[1])
if found then return found end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
#: Replace the entry (ARGV[2], for ARGV[3] ms) only while it is the claim ARGV[1].
_COMPLETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
#: Delete the entry only while it is the claim ARGV[1].
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Entry).decode


class RedisStore:
    """The store in Redis at ``url`` (``redis://``, ``rediss://`` or ``unix://``)."""

    def __init__(
        self,
        url: str,
        *,
        ttl: float,
        key_prefix: str = "postline:limits:",
        timeout: float = 0.1,
        password: str | None = None,
    ) -> None:
        self.ttl = ttl
        self._prefix = key_prefix + "idempotency:"
        self._timeout = timeout
        self._client = redis_client(url, timeout=timeout, password=password)
        self._claim: Any = self._client.register_script(_CLAIM)
        self._complete: Any = self._client.register_script(_COMPLETE)
        self._release: Any = self._client.register_script(_RELEASE)

    async def claim(self, scope: str, key: str, fingerprint: str) -> Claim:
        """See ``idempotency.Store.claim``."""
        value = _encode(Entry(fingerprint, new_token()))
        found = await self._call(self._claim, self._key(scope, key), value, int(CLAIM_TTL * 1000))
        if found:
            known = outcome(_decode(found), fingerprint)
            assert known is not None
            return known
        # The token is the claim's value itself: complete and release compare with it, and
        # this object keeps no state per request (a request that never ends leaks nothing).
        return Claim("new", value.hex())

    async def complete(self, scope: str, key: str, token: str, answer: Stored) -> None:
        """See ``idempotency.Store.complete``; a token no claim of ours gave is ignored."""
        claimed = _claim_of(token)
        if claimed is None:
            return
        value, entry = claimed
        done = _encode(Entry(entry.fingerprint, entry.token, answer))
        await self._call(self._complete, self._key(scope, key), value, done, int(self.ttl * 1000))

    async def release(self, scope: str, key: str, token: str) -> None:
        """See ``idempotency.Store.release``; a token no claim of ours gave is ignored."""
        claimed = _claim_of(token)
        if claimed is not None:
            await self._call(self._release, self._key(scope, key), claimed[0])

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    def _key(self, scope: str, key: str) -> str:
        digest = hashlib.sha256(scope.encode() + b"\0" + key.encode()).hexdigest()
        return self._prefix + digest

    async def _call(self, script: Any, key: str, *args: bytes | int) -> Any:
        try:
            async with asyncio.timeout(self._timeout):
                return await script(keys=[key], args=list(args))
        except TimeoutError as exc:
            raise IdempotencyUnavailable(f"redis did not answer within {self._timeout:g}s") from exc
        except (RedisError, OSError) as exc:
            raise IdempotencyUnavailable(f"redis: {exc}") from exc


def _claim_of(token: str) -> tuple[bytes, Entry] | None:
    """The claim's stored value and entry a token of :meth:`RedisStore.claim` stands for;
    ``None`` for a string no claim gave (not hex, or not an encoded claim): it cannot equal
    any stored claim, so completing or releasing with it changes nothing."""
    try:
        value = bytes.fromhex(token)
        entry = _decode(value)
    except (ValueError, msgspec.DecodeError):  # msgspec.ValidationError is a DecodeError
        return None
    return (value, entry) if entry.answer is None else None

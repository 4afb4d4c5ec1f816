"""The Idempotency-Key stores: in process (an injected clock) and in the real Redis, where
two stores stand for two ingest replicas; and the failure policy when Redis is away."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from services.ingest.api.idempotency import (
    CLAIM_TTL,
    GuardedStore,
    IdempotencyUnavailable,
    LocalStore,
    Store,
    Stored,
)
from services.ingest.api.idempotency_redis import RedisStore
from testing.smtpsink import free_port

ANSWER = Stored(202, b'{"id":"x"}', "application/json")
LOG = logging.getLogger("test")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_local_claims_complete_replay_and_expire() -> None:
    clock = Clock()
    store = LocalStore(ttl=3600, max_entries=100, clock=clock)
    claim = await store.claim("acme", "k", "fp1")
    assert claim.state == "new"
    assert (await store.claim("acme", "k", "fp1")).state == "busy"
    assert (await store.claim("acme", "k", "fp2")).state == "mismatch"
    assert (await store.claim("globex", "k", "fp1")).state == "new"  # another tenant
    await store.complete("acme", "k", claim.token, ANSWER)
    done = await store.claim("acme", "k", "fp1")
    assert (done.state, done.answer) == ("done", ANSWER)
    clock.now += 3600
    assert (await store.claim("acme", "k", "fp1")).state == "new"  # the answer lapsed


async def test_local_release_and_a_lapsed_claim() -> None:
    clock = Clock()
    store = LocalStore(ttl=3600, max_entries=100, clock=clock)
    claim = await store.claim("acme", "k", "fp")
    await store.release("acme", "k", "not-the-token")
    assert (await store.claim("acme", "k", "fp")).state == "busy"
    await store.release("acme", "k", claim.token)
    second = await store.claim("acme", "k", "fp")
    assert second.state == "new"
    clock.now += CLAIM_TTL  # its request never finished: the claim lapses
    third = await store.claim("acme", "k", "fp")
    assert third.state == "new"
    await store.complete("acme", "k", second.token, ANSWER)  # too late: not kept
    assert (await store.claim("acme", "k", "fp")).state == "busy"


async def test_local_store_is_bounded_oldest_out() -> None:
    store = LocalStore(ttl=3600, max_entries=3, clock=Clock())
    for i in range(5):
        await store.claim("t", f"k{i}", "fp")
    assert len(store) == 3
    assert (await store.claim("t", "k0", "fp")).state == "new"
    assert (await store.claim("t", "k4", "fp")).state == "busy"


@pytest.fixture
async def replicas(redis_url: str) -> list[Store]:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    # A timeout far above the production 0.1 s: these tests are about what two replicas
    # see, not about speed, and a loaded machine must not turn them into timeouts.
    stores: list[Store] = [
        RedisStore(redis_url, ttl=60, key_prefix=prefix, timeout=5.0) for _ in range(2)
    ]
    yield stores  # type: ignore[misc]
    for store in stores:
        await store.close()


async def test_redis_shares_keys_between_replicas(replicas: list[Store]) -> None:
    one, two = replicas
    claim = await one.claim("acme", "k", "fp")
    assert claim.state == "new"
    assert (await two.claim("acme", "k", "fp")).state == "busy"
    assert (await two.claim("acme", "k", "other")).state == "mismatch"
    await two.complete("acme", "k", "00", ANSWER)  # not its claim: ignored
    assert (await two.claim("acme", "k", "fp")).state == "busy"
    await one.complete("acme", "k", claim.token, ANSWER)
    done = await two.claim("acme", "k", "fp")
    assert (done.state, done.answer) == ("done", ANSWER)
    released = await two.claim("acme", "r", "fp")
    await two.release("acme", "r", released.token)
    assert (await one.claim("acme", "r", "fp")).state == "new"


async def test_redis_concurrent_claims_from_two_replicas_one_wins(replicas: list[Store]) -> None:
    claims = await asyncio.gather(*(replicas[i % 2].claim("acme", "race", "fp") for i in range(20)))
    assert sorted(c.state for c in claims) == ["busy"] * 19 + ["new"]


async def test_redis_away_falls_back_in_process_or_refuses() -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    failures: list[int] = []
    open_policy = GuardedStore(
        RedisStore(down, ttl=60), LocalStore(60, 100), LOG, lambda: failures.append(1)
    )
    claim = await open_policy.claim("acme", "k", "fp")
    assert claim.state == "new"
    assert (await open_policy.claim("acme", "k", "fp")).state == "busy"
    await open_policy.complete("acme", "k", claim.token, ANSWER)
    assert (await open_policy.claim("acme", "k", "fp")).state == "done"
    assert len(failures) == 3
    closed = GuardedStore(RedisStore(down, ttl=60), None, LOG)
    with pytest.raises(IdempotencyUnavailable):
        await closed.claim("acme", "k", "fp")
    await open_policy.close()
    await closed.close()

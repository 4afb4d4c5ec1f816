"""The sending API as ingest runs it: its listener, routes and Idempotency-Key store.

The listener is the runtime's :class:`~shared.runtime.httpserver.HttpListener` (aiohttp's
parser, a connection cap, bodies read only after the key is checked), on its own address
(``[ingest.api] listen``), not the process port: the process port serves ``/metrics`` and
probes on the cluster network, the API is public. It does not do TLS: put it behind an
ingress or proxy that does, as for every HTTP port of Postline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from services.ingest.api import openapi
from services.ingest.api.idempotency import GuardedStore, LocalStore, Store
from services.ingest.api.routes import ApiRoutes
from services.ingest.api.submit import LISTENER, Submitter
from services.ingest.config import ApiConfig, ListenerConfig, api_address
from services.ingest.core import IngestCore
from shared.config import LimitsConfig
from shared.errors import ConfigError
from shared.runtime.http import Router
from shared.runtime.httpserver import HttpListener


class Api:
    """The API of one ingest: bound by :meth:`start`, closed by :meth:`close`."""

    def __init__(self, core: IngestCore, config: ApiConfig, limits: LimitsConfig) -> None:
        self.host, port = api_address(config.listen)
        sensor = core.metrics.api_idempotency.labels("store_failed")
        self.store = open_store(
            limits,
            float(config.idempotency_ttl),
            config.idempotency_entries,
            core.log,
            on_failure=sensor.inc,
        )
        # What the policy checks see as the "listener" of an API request (events, logs).
        submitter = Submitter(core, ListenerConfig(name=LISTENER, host=self.host, port=port))
        document = openapi.encoded(config.max_batch, int(config.max_request_size))
        router = Router()
        ApiRoutes(core, config, submitter, self.store, document).register(router)
        self.listener = HttpListener(
            self.host,
            port,
            [router],
            key="ingest.api.listen",
            max_connections=config.max_connections,
        )

    @property
    def port(self) -> int:
        """The bound port (the ephemeral one when the config said 0)."""
        return self.listener.port

    async def start(self) -> None:
        """Bind; raises ``ListenError`` naming ``ingest.api.listen`` if it cannot."""
        await self.listener.start()

    async def close(self) -> None:
        """Stop serving and close the store's connections."""
        await self.listener.close()
        await self.store.close()


def open_store(
    limits: LimitsConfig,
    ttl: float,
    max_entries: int,
    log: logging.Logger,
    on_failure: Callable[[], None] = lambda: None,
) -> Store:
    """The Idempotency-Key store ``[limits]`` implies: Redis (guarded by
    ``on_redis_failure``) with ``backend = "redis"``, else in process. No connection is
    made here: Redis is reached on the first request with a key."""
    if limits.backend == "local":
        return LocalStore(ttl, max_entries)
    # Imported here so an installation without Redis (make run) never loads its client.
    from services.ingest.api.idempotency_redis import RedisStore  # noqa: PLC0415
    from shared.limits.redis_limiter import RedisLimiter  # noqa: PLC0415

    try:
        password = RedisLimiter.password_from(limits.password_file)
    except (OSError, IndexError) as exc:
        raise ConfigError("limits", "limits.password_file", f"cannot read: {exc}") from exc
    primary = RedisStore(
        limits.redis_url,
        ttl=ttl,
        key_prefix=limits.key_prefix,
        # Answers are up to a batch's worth (tens of KB): more than a limit check's deadline.
        timeout=max(float(limits.timeout), 0.25),
        password=password,
    )
    fallback = LocalStore(ttl, max_entries) if limits.on_redis_failure == "open" else None
    return GuardedStore(primary, fallback, log, on_failure)

"""The signer stage: ``postline signer``, and its place in ``postline run`` (order 20).

Reads ``postline.submitted`` as group ``postline-signer`` through ``shared.runtime.batch``
(each batch is one bus transaction: Deliveries and events published, input offsets committed),
signs on every core of the pod with a process pool (``pool.py`` says why not several
consumers), keeps the suppression table current, reloads the key directory every
``key_reload_interval`` and on SIGHUP, and follows the tenant table: a tenant's DKIM keys,
sealed in ``postline.tenants``, are opened with the KEK (``[secrets]``) when the tenant
changes and sign its domains' next messages (``tenantkeys.py``); a verified domain's mail
gets return paths at that domain's own host (``returnpath.py``). Everything a message goes
through is in ``pipeline.py``.
"""

from __future__ import annotations

import asyncio
import contextlib

from services.signer.config import SignerConfig, load_signer_config
from services.signer.keys import KeyStore
from services.signer.metrics import SignerMetrics
from services.signer.pipeline import SignerPipeline
from services.signer.pool import SigningPool
from services.signer.tenantkeys import has_sealed_keys, tenant_keys
from shared.config import Config
from shared.errors import ConfigError
from shared.runtime.batch import run_batch_loop
from shared.runtime.stage import StageContext
from shared.sealing import KeyRing, load_keyring_if_present
from shared.secretfile import read_secret
from shared.sendat import retry_tiers
from shared.suppressions import SuppressionTable
from shared.tenants import TenantTable
from shared.wire.records import Tenant
from shared.wire.topics import (
    OUTBOUND,
    OUTBOUND_BULK,
    QUEUE,
    SUBMITTED,
    SUPPRESSIONS,
    TENANTS,
    retry_topic,
)

GROUP = "postline-signer"


class SignerStage:
    """A running signer: its keys, pool, suppression table and batch loop."""

    def __init__(
        self,
        ctx: StageContext,
        config: SignerConfig,
        secret: bytes,
        keyring: KeyRing | None = None,
    ) -> None:
        self.config = config
        self.store = KeyStore(config.keys_dir)
        self.store.load()  # a bad or weak key stops the start with a ConfigError
        self.metrics = SignerMetrics(ctx.registry)
        self.metrics.observe_keys(self.store.all_keys())
        self.keyring = keyring
        secrets = ctx.config.core.secrets
        kek_files = (secrets.kek_path(ctx.config.core.runtime), *secrets.kek_previous_files)
        self.pool = SigningPool(self.store, config.workers, kek_files if keyring else ())
        self.suppressions = SuppressionTable.for_config(ctx.config)
        self.tenants = TenantTable(ctx.log)
        self.config_source = ctx.config.source
        try:
            self.retry_tiers = retry_tiers(ctx.config)
        except ValueError as exc:
            raise ConfigError(ctx.config.source, "deliverer.retry.tiers", str(exc)) from exc
        self.pipeline = SignerPipeline(
            config,
            secret=secret,
            store=self.store,
            pool=self.pool,
            suppressions=self.suppressions,
            metrics=self.metrics,
            log=ctx.log,
            tenants=self.tenants,  # return paths at a tenant's own domain (returnpath.py)
            retry_tiers=self.retry_tiers,  # where send-at mail waits (shared.sendat)
        )
        self.log = ctx.log
        ctx.reload_hooks.append(self.reload_keys)

    def reload_keys(self) -> None:
        """Re-read the key directory if a file changed (the previous keys stay on error)."""
        if self.store.refresh():
            self.log.info("DKIM keys reloaded", extra={"keys": len(self.store.all_keys())})
        elif self.store.last_error is not None:
            self.metrics.key_reload_errors.inc()
            self.log.error("DKIM key reload refused", extra={"error": str(self.store.last_error)})
            self.store.last_error = None
        self.metrics.observe_keys(self.store.all_keys())

    async def run(self, ctx: StageContext) -> None:
        """Serve until ``ctx.stopping``; see the module docstring."""
        # The tables the signer follows exist before it reads them, and both lanes before it
        # writes to them (Kafka: created when missing, as `postline topics create` would;
        # the broker does not auto-create), rather than a start that times out.
        await ctx.bus.ensure_topics(
            [SUPPRESSIONS.name, TENANTS.name, OUTBOUND.name, OUTBOUND_BULK.name]
            # send-at mail's first pass, and its entry in the deferred queue's index
            + [retry_topic(tier).name for tier in self.retry_tiers]
            + [QUEUE.name]
        )
        await self.suppressions.load(ctx.bus)
        await self.load_tenant_keys(ctx)
        self.pool.start()
        helpers = [
            ctx.spawn(
                self.suppressions.follow(ctx.bus, ctx.stopping, ctx.log), name="suppressions"
            ),
            ctx.spawn(self.tenants.follow(ctx.bus, ctx.stopping, ctx.log), name="tenants"),
            ctx.spawn(self._reload_periodically(ctx.stopping), name="key-reload"),
        ]
        try:
            await run_batch_loop(
                ctx,
                group=GROUP,
                topic=SUBMITTED,
                handle=self.pipeline.handle,
                metrics=ctx.metrics,
                max_records=self.config.batch_size,
            )
        finally:
            for task in helpers:
                task.cancel()
            for task in helpers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await asyncio.to_thread(self.pool.close)

    async def load_tenant_keys(self, ctx: StageContext) -> None:
        """Open every tenant's keys now and follow changes; tenant keys without a KEK
        stop the start (production mounts ``secrets.kek_file``; ``postline run`` makes one)."""
        await self.tenants.load(ctx.bus)
        tenants = list(self.tenants)
        if self.keyring is None and has_sealed_keys(tenants):
            raise ConfigError(
                self.config_source,
                "secrets.kek_file",
                "tenants have DKIM keys but the key-encryption key file is missing",
            )
        for tenant in tenants:
            self.tenant_changed(None, tenant)
        self.tenants.on_change(self.tenant_changed)

    def tenant_changed(self, before: Tenant | None, after: Tenant | None) -> None:
        """Replace a tenant's keys in the store (a removed tenant's keys go)."""
        tenant = after or before
        if tenant is None:
            return
        keys, problems = tenant_keys(after, self.keyring) if after else ([], [])
        for problem in problems:
            self.metrics.key_reload_errors.inc()
            self.log.error("tenant DKIM key not usable", extra={"error": problem})
        if before is not None or keys:
            self.log.info(
                "tenant DKIM keys updated", extra={"tenant": tenant.id, "keys": len(keys)}
            )
        self.store.set_tenant_keys(tenant.id, keys)

    async def _reload_periodically(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.config.key_reload_interval)
            self.reload_keys()


async def create(ctx: StageContext) -> SignerStage:
    """Build the stage from ``[signer]``; raises ``ConfigError`` on bad settings or keys."""
    config = load_signer_config(ctx.config)
    secret = read_secret(config.secret_file, "signer.secret_file", ctx.config.source)
    return SignerStage(ctx, config, secret, load_keyring_if_present(ctx.config))


def check_config(config: Config) -> SignerConfig:
    """``postline config check``: the section and every key file in ``keys_dir`` (a missing
    directory is fine; the secret file is read at start, where the Secret is mounted)."""
    section = load_signer_config(config)
    KeyStore(section.keys_dir).load()
    return section

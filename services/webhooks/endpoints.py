"""Which endpoints an event goes to, and their signing keys.

Reads the live tenant table (``shared.tenants.TenantTable``, followed from
``postline.tenants``): an event goes to every endpoint of its tenant (``default`` for events
without one) whose ``kinds`` name its kind, or, with no kinds given, to every endpoint for
the kinds about the tenant's own mail (``shared.wire.eventjson.TENANT_KINDS``). Operator
events (audits, throttling, dead letters, webhook state) never go to a tenant.

Signing keys are opened from the sealed secrets with the KEK ring (``shared.sealing``) once
per sealed value and kept; a secret that does not open is a :class:`SealError` for that
endpoint alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.webhooks.signing import secret_key
from shared.errors import SealError
from shared.sealing import KeyRing, webhook_associated_data
from shared.tenants import TenantTable
from shared.wire.eventjson import TENANT_KINDS
from shared.wire.records import DEFAULT_TENANT, Event, TenantState, WebhookEndpoint


@dataclass(frozen=True)
class Target:
    """One endpoint of one tenant."""

    tenant: str
    endpoint: WebhookEndpoint

    @property
    def key(self) -> tuple[str, str]:
        """(tenant, endpoint id): the endpoint's identity everywhere in the stage."""
        return self.tenant, self.endpoint.id

    @property
    def paused(self) -> bool:
        """Paused by the stage or an operator (its events wait in the retry tiers)."""
        return self.endpoint.status.state is not TenantState.ACTIVE


def wants(endpoint: WebhookEndpoint, kind: str) -> bool:
    """Whether ``endpoint`` receives events of ``kind``."""
    if endpoint.kinds:
        return kind in endpoint.kinds
    return kind in TENANT_KINDS


class Endpoints:
    """The endpoints of every tenant, from the live tenant table."""

    def __init__(self, tenants: TenantTable, keyring: KeyRing | None) -> None:
        self.tenants = tenants
        self._keyring = keyring
        self._keys: dict[tuple[str, str, bytes], bytes] = {}

    def targets(self, event: Event) -> list[Target]:
        """The endpoints ``event`` goes to (active or paused)."""
        tenant = self.tenants.get(event.tenant or DEFAULT_TENANT)
        if tenant is None or not tenant.webhooks or event.kind not in TENANT_KINDS:
            return []
        return [Target(tenant.id, e) for e in tenant.webhooks if wants(e, event.kind)]

    def target(self, tenant_id: str, endpoint_id: str) -> Target | None:
        """The endpoint ``endpoint_id`` of ``tenant_id`` as it is now; ``None`` if removed."""
        tenant = self.tenants.get(tenant_id)
        if tenant is None:
            return None
        found = next((e for e in tenant.webhooks if e.id == endpoint_id), None)
        return Target(tenant.id, found) if found is not None else None

    def key(self, target: Target) -> bytes:
        """The endpoint's HMAC key; :class:`SealError` when its secret does not open."""
        cache_key = (target.tenant, target.endpoint.id, target.endpoint.sealed_secret)
        key = self._keys.get(cache_key)
        if key is None:
            if self._keyring is None:
                raise SealError("no KEK file (secrets.kek_file) to open webhook secrets with")
            secret = self._keyring.open(
                target.endpoint.sealed_secret,
                webhook_associated_data(target.tenant, target.endpoint.id),
            )
            key = secret_key(secret.decode())
            self._keys[cache_key] = key
        return key

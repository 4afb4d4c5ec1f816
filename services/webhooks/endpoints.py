"""Which endpoints an event goes to, and their signing keys.

Reads the live tenant table (``shared.tenants.TenantTable``, followed from
``postline.tenants``): an event goes to every endpoint of its tenant whose ``kinds`` name its
kind, or, with no kinds given, to every endpoint for the kinds about the tenant's own mail
(``shared.wire.eventjson.TENANT_KINDS``). Operator events (audits, throttling, dead letters,
webhook state) never go to a tenant.

Some events about a message carry no tenant: the bouncer cannot tell whose a DSN or a
complaint is when it arrives at the global bounce domain (tenants' verified domains have
return-path hosts of their own, which name the tenant), nor whose a one-click unsubscribe
is. Such an event is never taken for the ``default`` tenant's (that would hand one business's
bounces to another): it goes to the tenant of the same message's earlier events, which
this replica saw because events are keyed by message id, so one message's events share a
partition (:class:`MessageTenants`). When none was seen (the message is older than the
memory, or its partition moved since), the event reaches no webhook and is counted.

Signing keys are opened from the sealed secrets with the KEK ring (``shared.sealing``) once
per sealed value and kept; a secret that does not open is a :class:`SealError` for that
endpoint alone.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from services.webhooks.signing import secret_key
from shared.errors import SealError
from shared.sealing import KeyRing, webhook_associated_data
from shared.tenants import TenantTable
from shared.wire.eventjson import TENANT_KINDS
from shared.wire.records import Event, TenantState, WebhookEndpoint


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


class MessageTenants:
    """The tenant of the last ``capacity`` messages seen with one (least recently seen
    forgotten first)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._tenants: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tenants)

    def tenant_of(self, event: Event) -> str:
        """``event``'s tenant: its own, else its message's as remembered ("" if unknown)."""
        if not event.message_id:
            return event.tenant
        if event.tenant:
            self._tenants[event.message_id] = event.tenant
            self._tenants.move_to_end(event.message_id)
            if len(self._tenants) > self.capacity:
                self._tenants.popitem(last=False)
            return event.tenant
        return self._tenants.get(event.message_id, "")


class Endpoints:
    """The endpoints of every tenant, from the live tenant table."""

    def __init__(
        self,
        tenants: TenantTable,
        keyring: KeyRing | None,
        *,
        remember_messages: int = 100_000,
        unattributed: Callable[[Event], None] | None = None,
    ) -> None:
        self.tenants = tenants
        self.messages = MessageTenants(remember_messages)
        self._unattributed = unattributed
        self._keyring = keyring
        self._keys: dict[tuple[str, str, bytes], bytes] = {}

    def targets(self, event: Event) -> list[Target]:
        """The endpoints ``event`` goes to (active or paused)."""
        tenant_id = self.messages.tenant_of(event)
        if event.kind not in TENANT_KINDS:
            return []
        if not tenant_id:
            if self._unattributed is not None:
                self._unattributed(event)
            return []
        tenant = self.tenants.get(tenant_id)
        if tenant is None or not tenant.webhooks:
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

"""The live copy of ``postline.tenants`` every stage looks tenants up in.

Owns the tenants by id and four indexes kept in step with them, so each lookup is O(1):
credential name -> (tenant, credential) for SMTP AUTH, sending domain -> tenant, API key id ->
(tenant, key) for the HTTP API, and return-path host -> sending domains for the bouncer's
intake (:meth:`TenantTable.by_return_path`, :meth:`TenantTable.return_path_tenant`). Filled
from ``Bus.read_table`` at start (:meth:`load`) and kept current by following the compacted
topic (:meth:`follow`, started by a stage with ``ctx.spawn``), so a change made with
``postline tenant ...`` or the admin API applies in every replica within the follow latency,
without a restart. Callbacks registered
with :meth:`on_change` see each change (the signer refreshes its keys there).

It does not change tenants (``shared.tenant_admin`` does) and does not decide what a paused
tenant's mail gets (ingest does). The ``default`` tenant needs no record: :meth:`get` returns
an implicit active tenant without limits for it (and for ``""``, the id of records written
before tenants), unless a record by that id exists.

A record this version cannot decode leaves the tenant as it was (and is logged): the admin
tools only write records they can read, so this is a newer writer, and the last known state
is the safest guess. Indexes are updated per changed tenant, not rebuilt for the table, so
replaying the topic at start costs O(size of the topic).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Iterator
from typing import TypeVar

from shared.bus.base import Bus, BusMessage
from shared.bus.follow import follow_topic
from shared.credentials import api_key_id, api_key_matches, hash_secret, verify_secret
from shared.errors import DecodeError
from shared.wire.records import DEFAULT_TENANT, ApiKey, Credential, SendingDomain, Tenant
from shared.wire.topics import TENANTS

#: ``callback(before, after)``: ``before`` is ``None`` for a new tenant, ``after`` for a removal.
ChangeCallback = Callable[[Tenant | None, Tenant | None], None]

T = TypeVar("T")

#: What :meth:`TenantTable.get` returns for the default tenant when no record exists.
IMPLICIT_DEFAULT = Tenant(id=DEFAULT_TENANT, name="default")


def return_path_host(domain: SendingDomain) -> str:
    """The envelope sender's domain for mail from ``domain``: its own ``bounce_domain``, else
    ``bounces.<name>`` (the host ``postline tenant domain add`` asks to CNAME to ours)."""
    return (domain.bounce_domain or f"bounces.{domain.name}").lower().rstrip(".")


class TenantTable:
    """Tenants by id, with credential, domain and API key indexes."""

    def __init__(self, log: logging.Logger | None = None) -> None:
        self._log = log or logging.getLogger("postline.tenants")
        self._tenants: dict[str, Tenant] = {}
        self._credentials: dict[str, tuple[Tenant, Credential]] = {}
        self._domains: dict[str, Tenant] = {}
        self._api_keys: dict[str, tuple[Tenant, ApiKey]] = {}
        # Several domains may share one host (an explicit bounce_domain): all are kept.
        self._return_paths: dict[str, list[tuple[Tenant, SendingDomain]]] = {}
        self._callbacks: list[ChangeCallback] = []
        # Checked for unknown logins, so a response time does not tell which names exist.
        self._dummy_secret = hash_secret(secrets.token_urlsafe(18))

    def __len__(self) -> int:
        return len(self._tenants)

    def __iter__(self) -> Iterator[Tenant]:
        return iter(list(self._tenants.values()))

    def get(self, tenant_id: str) -> Tenant | None:
        """The tenant ``tenant_id``; ``default`` (or ``""``) is always there."""
        tenant = self._tenants.get(tenant_id or DEFAULT_TENANT)
        if tenant is None and tenant_id in ("", DEFAULT_TENANT):
            return IMPLICIT_DEFAULT
        return tenant

    def by_credential(self, name: str) -> tuple[Tenant, Credential] | None:
        """The tenant and credential with AUTH user name ``name`` (exact match)."""
        return self._credentials.get(name)

    def by_domain(self, domain: str) -> Tenant | None:
        """The tenant owning sending domain ``domain`` (verified or not: check ``verified``)."""
        return self._domains.get(domain.lower().rstrip("."))

    def sending_domain(self, tenant_id: str, domain: str) -> SendingDomain | None:
        """``domain`` when it is a *verified* sending domain of ``tenant_id`` ("" is the
        default tenant), else ``None``: another tenant's domain, an unverified or unknown one."""
        owner = self.by_domain(domain)
        if owner is None or owner.id != (tenant_id or DEFAULT_TENANT):
            return None
        name = domain.lower().rstrip(".")
        found = next((d for d in owner.domains if d.name == name), None)
        return found if found is not None and found.verified else None

    def by_return_path(self, host: str) -> tuple[Tenant, SendingDomain] | None:
        """A tenant and *verified* sending domain whose return-path host is ``host``
        (:func:`return_path_host`); ``None`` when no verified domain uses it."""
        for tenant, domain in self._return_paths.get(host.lower().rstrip("."), ()):
            if domain.verified:
                return tenant, domain
        return None

    def return_path_tenant(self, host: str) -> str:
        """The id of the one tenant with verified domains at return-path host ``host``; ""
        when there is none, or when several tenants share the host (an explicit
        ``bounce_domain`` may be given twice): a report there cannot be attributed."""
        owners = {
            tenant.id
            for tenant, domain in self._return_paths.get(host.lower().rstrip("."), ())
            if domain.verified
        }
        return owners.pop() if len(owners) == 1 else ""

    def by_api_key(self, key: str) -> tuple[Tenant, ApiKey] | None:
        """The tenant and key for a whole API key; ``None`` for a wrong, unknown or revoked
        key. Found by its id, then its hash compared in constant time."""
        key_id = api_key_id(key)
        found = self._api_keys.get(key_id) if key_id else None
        if found is None or found[1].revoked_at:
            return None
        return found if api_key_matches(key, found[1].hash) else None

    async def verify_credential(
        self, name: str, password: bytes
    ) -> tuple[Tenant, Credential] | None:
        """The tenant and credential when ``name`` and ``password`` match, else ``None``.

        scrypt runs in a worker thread (tens of milliseconds); an unknown name is checked
        against a dummy secret so the time taken does not reveal which names exist.
        """
        found = self._credentials.get(name)
        secret = found[1].secret if found is not None else self._dummy_secret
        ok = await asyncio.to_thread(verify_secret, password, secret)
        return found if ok and found is not None else None

    def on_change(self, callback: ChangeCallback) -> None:
        """Call ``callback(before, after)`` after each change the table applies (not for
        :meth:`load`). It runs in the follower task: keep it quick; an exception ends the
        follower, which the runtime reports as a dead task (the stage turns unready)."""
        self._callbacks.append(callback)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one record of the topic: a value sets its tenant, a tombstone removes it."""
        if key is None:
            return
        tenant_id = key.decode("utf-8", "replace")
        after: Tenant | None = None
        if value is not None:
            try:
                after = TENANTS.decode(value)
            except DecodeError as exc:
                self._log.warning(
                    "undecodable tenant record kept as it was",
                    extra={"tenant": tenant_id, "error": str(exc)},
                )
                return
        before = self._tenants.get(tenant_id)
        if before == after:
            return  # a replay: nothing changed
        self._replace(tenant_id, before, after)
        for callback in self._callbacks:
            callback(before, after)

    async def load(self, bus: Bus) -> None:
        """Replace the table with the topic's current state."""
        table = await bus.read_table(TENANTS.name)
        self._tenants, self._credentials, self._domains, self._api_keys = {}, {}, {}, {}
        self._return_paths = {}
        for key, value in table.items():
            tenant_id = key.decode("utf-8", "replace")
            try:
                self._replace(tenant_id, None, TENANTS.decode(value))
            except DecodeError as exc:
                self._log.warning(
                    "undecodable tenant record skipped",
                    extra={"tenant": tenant_id, "error": str(exc)},
                )

    async def follow(self, bus: Bus, stopping: asyncio.Event, log: logging.Logger) -> None:
        """Apply every record of the topic as it commits, until ``stopping``; a bus failure
        restarts the follower after a pause (replaying is harmless: records are states)."""
        await follow_topic(bus, TENANTS.name, self._apply_message, stopping, log)

    def _apply_message(self, message: BusMessage) -> None:
        self.apply(message.key, message.value)

    def _replace(self, tenant_id: str, before: Tenant | None, after: Tenant | None) -> None:
        """Swap one tenant and its index entries. An entry another tenant holds is left to
        it (the admin tools refuse duplicates; only two admins racing could make one)."""
        if before is not None:
            for credential in before.credentials:
                if self._owner(self._credentials.get(credential.name)) == tenant_id:
                    del self._credentials[credential.name]
            for domain in before.domains:
                if (owner := self._domains.get(domain.name)) and owner.id == tenant_id:
                    del self._domains[domain.name]  # names are stored lower-case
            for api_key in before.api_keys:
                if self._owner(self._api_keys.get(api_key.id)) == tenant_id:
                    del self._api_keys[api_key.id]
            self._drop_return_paths(tenant_id, before)
        if after is None:
            self._tenants.pop(tenant_id, None)
            return
        self._tenants[tenant_id] = after
        for credential in after.credentials:
            self._claim(self._credentials, credential.name, (after, credential))
        for domain in after.domains:
            current = self._domains.get(domain.name)
            if current is None or current.id == tenant_id:
                self._domains[domain.name] = after
        for api_key in after.api_keys:
            self._claim(self._api_keys, api_key.id, (after, api_key))
        self._add_return_paths(after)

    def _drop_return_paths(self, tenant_id: str, before: Tenant) -> None:
        for host in {return_path_host(domain) for domain in before.domains}:
            kept = [e for e in self._return_paths.get(host, ()) if e[0].id != tenant_id]
            if kept:
                self._return_paths[host] = kept
            else:
                self._return_paths.pop(host, None)

    def _add_return_paths(self, after: Tenant) -> None:
        for domain in after.domains:
            if self._domains.get(domain.name) is after:  # not a domain another tenant holds
                self._return_paths.setdefault(return_path_host(domain), []).append((after, domain))

    @staticmethod
    def _owner(entry: tuple[Tenant, object] | None) -> str | None:
        return entry[0].id if entry is not None else None

    @staticmethod
    def _claim(index: dict[str, tuple[Tenant, T]], name: str, entry: tuple[Tenant, T]) -> None:
        current = index.get(name)
        if current is None or current[0].id == entry[0].id:
            index[name] = entry

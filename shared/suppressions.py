"""The live copy of ``postline.suppressions`` that ingest and the signer check recipients against.

Scopes. A suppression applies to everyone, to one tenant, or to bulk mail from one sender
domain (``Suppression.tenant`` and ``Suppression.scope``; keys: ``suppression_key``):

======================  ===========================  =====================================
tenant / scope          key                          applies to
======================  ===========================  =====================================
"" / ""                 ``address``                  every message of every tenant
T / ""                  ``tenant:T|address``         every message of tenant T
"" / D                  ``D|address``                bulk mail from sender domain D
T / D                   ``tenant:T|D|address``       tenant T's bulk mail from D
======================  ===========================  =====================================

The bouncer writes them the way SES-style services do: a hard bounce (or repeated soft
bounces) is global, since the address is gone for everyone; a complaint or an unsubscribe
applies to the tenant that sent, since the recipient objected to that business and another
business's mail still goes; a List-Unsubscribe (one-click or mailto) applies to bulk mail
from its sender domain. Its token names the domain, not the tenant (changing the token
would break links already sent), and a sending domain belongs to one tenant, so ``"" / D``
is that tenant's scope in practice. An asynchronous DSN or ARF report names only message and
recipient in its VERP token; its tenant is the one whose return-path host it arrived at
(``bounces.D``). When the bouncer cannot tell the tenant (a report at the global bounce
domain, or at a host several tenants share) it writes a global entry: over-suppressing is
the safe mistake. Operators may write any of the four
(``postline suppress add --tenant T --scope D``). A tenant of ``""`` on a message means the
default tenant (a writer from before tenants), so lookups treat it as ``default``.

Owns an in-memory set of suppression keys (``shared.wire.topics.suppression_key``), filled from
``Bus.read_table`` at start and kept current by following the compacted topic. It does not
decide what happens to a suppressed recipient: ingest refuses or drops it
(``services/ingest/policy/rcpt_to.py``), the signer drops it with an event. Any value under a
key suppresses, even one this version cannot decode: never mailing is the safe mistake.

Erased addresses (``postline gdpr erase``) are kept as their keyed hash: their entries' keys
hold ``hmac-sha256:<hex>`` where the address was (``shared.addresshash``), so with the key a
lookup also tries the hash of the recipient, in every scope. A table that holds such entries
but has no key refuses to load (:func:`shared.addresshash.missing_key_error`): without it
those addresses would be mailed again.

Start-up order: the snapshot from ``read_table`` makes the table complete before the first
batch; the follower then replays the topic from its beginning (so nothing published between
the snapshot and the start of the follower is missed). During that replay an address that
was added and later removed can read as suppressed for the moment between the two replayed
records: we accept that short over-suppression rather than ever miss a suppression.
"""

from __future__ import annotations

import asyncio
import logging

from shared.addresshash import (
    address_hash,
    hashed_form,
    is_hashed,
    load_hash_key_if_present,
    missing_key_error,
)
from shared.bus.base import Bus, BusMessage
from shared.bus.follow import follow_topic
from shared.config import Config
from shared.errors import ConfigError
from shared.wire.records import DEFAULT_TENANT
from shared.wire.topics import SUPPRESSIONS, suppression_key


class SuppressionTable:
    """Suppressed addresses in every scope (the table in the module docstring).

    ``hash_key`` is the keyed-hash key (``[secrets] gdpr_hash_key_file``): with it, erased
    addresses' hashed entries match too. ``missing_key`` is the error :meth:`load` raises
    when the topic holds hashed entries and there is no key.
    """

    def __init__(
        self, hash_key: bytes | None = None, missing_key: ConfigError | None = None
    ) -> None:
        self._keys: set[str] = set()
        self._hash_key = hash_key
        self._missing_key = missing_key

    @classmethod
    def for_config(cls, config: Config) -> SuppressionTable:
        """A table with the keyed-hash key ``config`` names, when its file exists."""
        return cls(load_hash_key_if_present(config), missing_key_error(config))

    def __len__(self) -> int:
        return len(self._keys)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one record of the topic: a value adds its key, a tombstone removes it."""
        if key is None:
            return
        name = key.decode("utf-8", "replace").lower()
        if value is None:
            self._keys.discard(name)
        else:
            self._keys.add(name)

    def is_suppressed(self, address: str, *, tenant: str = "", sender_domain: str = "") -> bool:
        """Whether ``tenant``'s mail to ``address`` is suppressed.

        Global and tenant entries always count; ``sender_domain`` is given only for bulk mail
        (its domain entries are unsubscribes from bulk mail: a password reset still goes).
        """
        tenant = tenant or DEFAULT_TENANT
        forms = [address]
        if self._hash_key is not None:
            forms.append(hashed_form(address_hash(self._hash_key, address)))
        for form in forms:
            keys = [suppression_key(form), suppression_key(form, tenant=tenant)]
            if sender_domain:
                keys += [
                    suppression_key(form, sender_domain),
                    suppression_key(form, sender_domain, tenant),
                ]
            if any(key in self._keys for key in keys):
                return True
        return False

    async def load(self, bus: Bus) -> None:
        """Replace the table with the topic's current state; raises the ``missing_key``
        error when it holds erased addresses' entries and there is no key to match them."""
        table = await bus.read_table(SUPPRESSIONS.name)
        keys = {key.decode("utf-8", "replace").lower() for key in table}
        unmatched = self._hash_key is None and any(is_hashed(key) for key in keys)
        if unmatched and self._missing_key is not None:
            raise self._missing_key
        self._keys = keys

    async def follow(self, bus: Bus, stopping: asyncio.Event, log: logging.Logger) -> None:
        """Apply every record of the topic as it commits, until ``stopping``; a bus failure
        restarts the follower after a pause (replaying is harmless: records are states)."""

        def apply(message: BusMessage) -> None:
            self.apply(message.key, message.value)
            if self._missing_key is not None and self._unmatched(message):
                # An erase while running without the key: the entry cannot match until the
                # key is mounted and the process restarted (where load() then refuses).
                log.error(
                    "suppression of an erased address unmatched",
                    extra={"error": str(self._missing_key)},
                )

        await follow_topic(bus, SUPPRESSIONS.name, apply, stopping, log)

    def _unmatched(self, message: BusMessage) -> bool:
        """Whether ``message`` adds an erased address's entry this table cannot match."""
        if self._hash_key is not None or message.key is None or message.value is None:
            return False
        return is_hashed(message.key.decode("utf-8", "replace"))

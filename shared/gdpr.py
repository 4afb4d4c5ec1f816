"""What the compacted topics hold about one address, and erasing it there.

Owns finding an address on the compacted topics (the tables every replica reads) and the
records that erase it (``postline gdpr export`` / ``erase``; the store's part is
``shared.store.gdpr``):

- ``postline.suppressions``: its entries are replaced by entries under its keyed hash
  (``shared.addresshash``) with the same reason, scope, tenant, time, source and proof, and
  the originals are tombstoned, in one atomic publish: the address stays suppressed, and no
  moment passes in which it is not.
- ``postline.control`` and ``postline.reputation``: records whose key names the address
  (an AUTH user name or a credential hold ``credential:<login>``) are tombstoned.
- ``postline.quarantine``: a held message from the address, or to it alone, is tombstoned
  (deleted, as ``postline quarantine delete`` does); one held for other recipients too is
  reported and kept (deleting it would lose their mail).
- ``postline.queue``: deferred mail to or from the address is reported, not erased: it is
  mail in flight, and its entry ends with its delivery, bounce or expiry.

A tombstone still carries the key (so the address, for the suppression and control keys)
until the broker drops it ``delete.retention.ms`` after compaction (the embedded bus: after
``[embedded] retention``); compaction removes the superseded values themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from shared.addresshash import address_hash
from shared.bus.base import Bus
from shared.errors import DecodeError
from shared.wire.records import (
    ControlAction,
    Quarantined,
    QueueEntry,
    Reputation,
    Suppression,
)
from shared.wire.topics import (
    CONTROL,
    QUARANTINE,
    QUEUE,
    REPUTATION,
    SUPPRESSIONS,
    OutRecord,
    suppression_record_key,
)

#: The compacted topics this module reads.
TOPICS = (SUPPRESSIONS.name, CONTROL.name, REPUTATION.name, QUEUE.name, QUARANTINE.name)


@dataclass
class Findings:
    """What the compacted topics hold about one address."""

    suppressions: list[Suppression] = field(default_factory=list)
    control: list[ControlAction] = field(default_factory=list)
    reputation: list[Reputation] = field(default_factory=list)
    quarantine: list[Quarantined] = field(default_factory=list)
    queue: list[QueueEntry] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """How many records of each kind."""
        return {
            "suppressions": len(self.suppressions),
            "control": len(self.control),
            "reputation": len(self.reputation),
            "quarantine": len(self.quarantine),
            "queue": len(self.queue),
        }


def _decoded(table: dict[bytes, bytes], decode: Any) -> list[tuple[str, Any]]:
    """(key, record) of a table snapshot, skipping what this version cannot decode."""
    out = []
    for key, value in table.items():
        try:
            out.append((key.decode("utf-8", "replace"), decode(value)))
        except DecodeError:
            continue
    return out


def _of_tenant(record_tenant: str, tenant: str) -> bool:
    return not tenant or record_tenant in (tenant, "")


async def find(bus: Bus, address: str, tenant: str = "") -> Findings:
    """The records about ``address`` on the compacted topics. With ``tenant``: the entries
    of that tenant only (suppressions scoped to it, its quarantined and queued mail); the
    control and reputation keys name a login, not a tenant, and are found either way."""
    await bus.ensure_topics(list(TOPICS))
    wanted = address.strip().lower()
    found = Findings()
    for _, entry in _decoded(await bus.read_table(SUPPRESSIONS.name), SUPPRESSIONS.decode):
        if entry.address.lower() == wanted and (not tenant or entry.tenant == tenant):
            found.suppressions.append(entry)
    for key, action in _decoded(await bus.read_table(CONTROL.name), CONTROL.decode):
        if _names(key, wanted):
            found.control.append(action)
    for key, record in _decoded(await bus.read_table(REPUTATION.name), REPUTATION.decode):
        if _names(key, wanted):
            found.reputation.append(record)
    for _, held in _decoded(await bus.read_table(QUARANTINE.name), QUARANTINE.decode):
        sub = held.submission
        about = wanted in (sub.mail_from.lower(), *(r.lower() for r in sub.rcpt_to))
        if about and _of_tenant(sub.tenant, tenant):
            found.quarantine.append(held)
    for _, queued in _decoded(await bus.read_table(QUEUE.name), QUEUE.decode):
        about = wanted in (queued.sender.lower(), *(r.lower() for r in queued.recipients))
        if about and _of_tenant(queued.tenant, tenant):
            found.queue.append(queued)
    found.suppressions.sort(key=lambda s: (s.tenant, s.scope, s.at))
    return found


def _names(key: str, address: str) -> bool:
    """Whether a control or reputation key names ``address`` (``verb|target``,
    ``credential|<login>``, ``credential:<login>``): as a whole ``|``/``:`` separated part."""
    parts = key.lower().replace(":", "|").split("|")
    return address in parts


def hashed(entry: Suppression, key: bytes) -> Suppression:
    """``entry`` with its address replaced by the address's keyed hash; everything else
    (reason, scope, tenant, time, source, proof) kept. The detail goes: it is free text
    that may quote the address (a bounce's diagnostic, "tried <address>")."""
    return msgspec.structs.replace(
        entry, address="", address_hash=address_hash(key, entry.address), detail=""
    )


def _erasable_quarantine(held: Quarantined, address: str) -> bool:
    sub = held.submission
    rcpts = {r.lower() for r in sub.rcpt_to}
    return sub.mail_from.lower() == address or rcpts == {address}


def erase_records(found: Findings, address: str, key: bytes) -> list[OutRecord]:
    """What erases ``found`` from the compacted topics: hashed replacements first, then the
    tombstones, to publish in one atomic ``Bus.publish``."""
    wanted = address.strip().lower()
    records = [SUPPRESSIONS.out(hashed(entry, key)) for entry in found.suppressions]
    records += [SUPPRESSIONS.tombstone(suppression_record_key(e)) for e in found.suppressions]
    records += [CONTROL.tombstone(CONTROL.key_of(action)) for action in found.control]
    records += [REPUTATION.tombstone(REPUTATION.key_of(record)) for record in found.reputation]
    records += [
        QUARANTINE.tombstone(QUARANTINE.key_of(held))
        for held in found.quarantine
        if _erasable_quarantine(held, wanted)
    ]
    return records


def erased_counts(found: Findings, address: str) -> dict[str, int]:
    """What :func:`erase_records` erases, per topic (for the erasure record and the CLI)."""
    wanted = address.strip().lower()
    erased_held = sum(_erasable_quarantine(h, wanted) for h in found.quarantine)
    return {
        "suppressions_hashed": len(found.suppressions),
        "control_tombstoned": len(found.control),
        "reputation_tombstoned": len(found.reputation),
        "quarantine_tombstoned": erased_held,
        "quarantine_kept": len(found.quarantine) - erased_held,
        "queue_in_flight": len(found.queue),
    }


def export_view(found: Findings) -> dict[str, Any]:
    """``found`` as JSON-able data (``postline gdpr export``). A quarantined message is
    shown by its envelope and size, not its content (the content is the sender's message:
    ``postline quarantine show`` prints it for an operator who needs it)."""
    return {
        "suppressions": [msgspec.to_builtins(s) for s in found.suppressions],
        "control": [msgspec.to_builtins(a) for a in found.control],
        "reputation": [
            {"key": r.key, "scope": r.scope, "tenant": r.tenant, "level": r.level}
            for r in found.reputation
        ],
        "quarantine": [
            {
                "message_id": h.submission.id,
                "at": h.at,
                "tenant": h.submission.tenant,
                "mail_from": h.submission.mail_from,
                "rcpt_to": list(h.submission.rcpt_to),
                "size": len(h.submission.data),
                "reference": h.reference,
            }
            for h in found.quarantine
        ],
        "queue": [msgspec.to_builtins(q) for q in found.queue],
    }

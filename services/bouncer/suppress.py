"""Suppression decisions, and the suppression list as the compacted topic.

Owns when an address is suppressed (hard bounces and complaints at once, soft bounces after
N within a window, unsubscribes per the token's scope) and in which scope (the policy is
``shared.suppressions``'s docstring: bounces global, complaints for the tenant that sent,
List-Unsubscribe for its sender domain), and reading/writing ``postline.suppressions`` (a
removal is a tombstone, keyed by ``suppression_key``), including the CSV export. It does not
classify and does not serve HTTP (``admin.py``).
"""

from __future__ import annotations

import csv
import io
from collections import deque
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from shared.addresshash import address_hash
from shared.bounceclass.rules import BounceClass
from shared.bus.base import Bus
from shared.errors import DecodeError
from shared.tenant_fields import TENANT_ID
from shared.wire.records import Suppression, SuppressionReason, now
from shared.wire.tokens import UnsubscribeToken
from shared.wire.topics import SUPPRESSIONS, OutRecord, suppression_key

# "tenant" last: a column added to the end keeps existing readers of the export working.
#: bounce_reason last: a column added at the end keeps older readers of the export working.
#: The proof of an unsubscribe or complaint and an erased address's keyed hash (``address``
#: then ""), last for the same reason: an audit reads them from the export.
CSV_FIELDS = (
    "address",
    "scope",
    "reason",
    "source",
    "at",
    "detail",
    "tenant",
    "bounce_reason",
    "method",
    "proof",
    "message_id",
    "address_hash",
)

#: A spreadsheet runs a cell starting with one of these as a formula (``=cmd|' /C calc'!A0``);
#: OWASP's CSV injection guidance: prefix such a cell with ``'`` so it stays text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

MAX_ADDRESS = 254  # RFC 5321 4.5.3.1.3: a path is 256 octets with its angle brackets
MAX_LOCAL_PART = 64  # RFC 5321 4.5.3.1.1
MAX_LABEL = 63  # RFC 1035 2.3.4
MAX_DETAIL = 1000
# RFC 5322 3.2.3 atext, plus any non-ASCII character (RFC 6531 UTF8-non-ascii).
_ATEXT = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~"
)
_LABEL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")

#: The unsubscribe's method on its suppression, by the channel it came through: the RFC 8058
#: one-click POST ("http") or a mail to the List-Unsubscribe mailto address ("smtp").
UNSUBSCRIBE_METHODS = {"http": "one_click", "smtp": "mailto"}

#: Reasons that are about the address itself, whoever sends: never scoped to a tenant.
_ADDRESS_GONE = (SuppressionReason.HARD_BOUNCE, SuppressionReason.SOFT_BOUNCES)


class SoftBounceCounter:
    """Soft bounces per address within a sliding window (in memory, per process).

    A restart forgets the counts; the cost is at most N-1 more attempts per address, which
    is what a soft bounce allows anyway.
    """

    def __init__(self, limit: int, window: float, max_addresses: int = 1_000_000) -> None:
        self._limit = limit
        self._window = window
        self._max = max_addresses
        self._seen: dict[str, deque[float]] = {}

    def add(self, address: str, at: float) -> bool:
        """Count one soft bounce; ``True`` when the address reached the limit."""
        key = address.lower()
        times = self._seen.setdefault(key, deque())
        times.append(at)
        while times and times[0] < at - self._window:
            times.popleft()
        if len(times) >= self._limit:
            del self._seen[key]
            return True
        if len(self._seen) > self._max:  # bounded memory: forget the oldest address
            self._seen.pop(next(iter(self._seen)))
        return False


class SuppressionPolicy:
    """Turns classified failures into suppressions."""

    def __init__(self, soft_limit: int, soft_window: float, source: str = "bouncer") -> None:
        self._soft = SoftBounceCounter(soft_limit, soft_window)
        self._source = source

    def decide(
        self,
        address: str,
        bounce_class: BounceClass,
        at: float,
        detail: str = "",
        tenant: str = "",
        *,
        bounce_reason: str = "",
        method: str = "",
        proof: str = "",
        message_id: str = "",
    ) -> Suppression | None:
        """The suppression ``bounce_class`` calls for, or ``None``; ``bounce_reason`` (the
        failure's reason, ``shared.bounceclass.reasons``) goes on the entry, and so do
        ``method``, ``proof`` and ``message_id`` (how it came, the report's id, the message).

        Bounces are global (the mailbox is gone for every sender); a complaint applies to
        ``tenant``, the business the recipient objected to ("": not known, so global).
        """
        if not address or "@" not in address:
            return None
        if bounce_class is BounceClass.HARD:
            reason = SuppressionReason.HARD_BOUNCE
        elif bounce_class is BounceClass.COMPLAINT:
            reason = SuppressionReason.COMPLAINT
        elif bounce_class is BounceClass.SOFT and self._soft.add(address, at):
            reason = SuppressionReason.SOFT_BOUNCES
        else:
            return None  # block, auto-reply and unknown never suppress the address
        return Suppression(
            address=address.lower(),
            reason=reason,
            source=self._source,
            at=at,
            detail=detail[:300],
            tenant="" if reason in _ADDRESS_GONE else tenant,
            bounce_reason=bounce_reason,
            method=method,
            proof=proof,
            message_id=message_id,
        )

    def unsubscribe(self, token: UnsubscribeToken, at: float, via: str) -> Suppression:
        """The suppression for a verified unsubscribe (scoped to the sender domain if set).

        No tenant: the token names recipient, sender domain and message only, and a new field
        would invalidate links already sent. A sending domain belongs to one tenant, so the
        domain scope is that tenant's in practice (``shared.suppressions``).

        The proof stays on the entry as long as it lasts: when (``at``), how (``method``:
        the RFC 8058 one-click POST or the List-Unsubscribe mailto) and the token's HMAC,
        which verifies again with the address (``shared.wire.tokens.unsubscribe_proof``).
        """
        return Suppression(
            address=token.recipient.lower(),
            reason=SuppressionReason.UNSUBSCRIBE,
            source=self._source,
            at=at,
            scope=token.scope.lower(),
            detail=f"{via} message {token.message_id}",
            method=UNSUBSCRIBE_METHODS.get(via, via),
            proof=token.mac,
            message_id=token.message_id,
        )


def parse_reason(value: str) -> SuppressionReason:
    """A reason name from the CLI or API; raises ``ValueError`` listing the valid ones."""
    try:
        return SuppressionReason(value)
    except ValueError:
        names = ", ".join(r.value for r in SuppressionReason)
        raise ValueError(f"unknown reason {value!r} (one of {names})") from None


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def tenant_problem(tenant: str) -> str | None:
    """Why ``tenant`` cannot scope a suppression, or ``None`` ("" is no tenant: global)."""
    # The tenant id is part of the suppression key: the tenants' own id grammar.
    if tenant and not TENANT_ID.match(tenant):
        return "tenant id: expected 1-63 characters of a-z, 0-9 and '-'"
    return None


def domain_problem(domain: str) -> str | None:
    """Why ``domain`` is not a domain name a suppression can name, or ``None``."""
    if _has_control(domain):
        return "domain contains a control character"
    labels = domain.split(".")
    for label in labels:
        if not label:
            return "domain has an empty label"
        if len(label.encode()) > MAX_LABEL:
            return f"domain label longer than {MAX_LABEL} octets"
        if label[0] == "-" or label[-1] == "-":
            return "domain label starts or ends with '-'"
        if any(c not in _LABEL and ord(c) < 128 for c in label):
            return "domain has a character not allowed in a host name"
    return None


def address_problem(address: str) -> str | None:
    """Why ``address`` cannot be suppressed (length, control characters, syntax), or ``None``.

    Accepts what RFC 5321 allows in a path: a dot-atom or quoted local part, UTF-8 where
    SMTPUTF8 (RFC 6531) allows it; refuses address literals (nobody is suppressed by IP).
    """
    if not address:
        return "address is empty"
    if len(address.encode()) > MAX_ADDRESS:
        return f"address longer than {MAX_ADDRESS} octets (RFC 5321 4.5.3.1.3)"
    if _has_control(address):
        return "address contains a control character (CR, LF, NUL, ...)"
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return "address must be local-part@domain"
    if len(local.encode()) > MAX_LOCAL_PART:
        return f"local part longer than {MAX_LOCAL_PART} octets (RFC 5321 4.5.3.1.1)"
    if local.startswith('"'):
        inner = local[1:-1].replace("\\\\", "").replace('\\"', "")
        if len(local) < 2 or not local.endswith('"') or '"' in inner or "\\" in inner:
            return "malformed quoted local part"
    elif "@" in local:
        return "address must contain exactly one @"
    elif any(
        not atom or any(c not in _ATEXT and ord(c) < 128 for c in atom) for atom in local.split(".")
    ):
        return "malformed local part (RFC 5321 4.1.2 dot-string)"
    return domain_problem(domain)


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def suppression_row(record: Suppression) -> dict[str, Any]:
    """One suppression as plain data (JSON, CSV)."""
    return {name: getattr(record, name) for name in CSV_FIELDS}


def export_csv(records: Iterable[Suppression]) -> str:
    """The list as CSV with a header line, for audits."""
    out = io.StringIO()
    # RFC 4180 2.1 CRLF line ends; the csv module then also quotes a field holding a bare CR.
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\r\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: _cell(v) for k, v in suppression_row(record).items()})
    return out.getvalue()


def decode_table(table: dict[bytes, bytes]) -> list[Suppression]:
    """Decode a compacted-topic snapshot, skipping records this version cannot read."""
    records = []
    for value in table.values():
        try:
            records.append(SUPPRESSIONS.decode(value))
        except DecodeError:  # what the topic raises (msgspec's errors are wrapped in it)
            continue
    return sorted(records, key=lambda s: (s.address, s.tenant, s.scope))


class SuppressionAdmin:
    """Add, remove, look up and list suppressions on a bus (CLI and admin API).

    With ``hash_key`` (``[secrets] gdpr_hash_key_file``) a lookup also finds the entries of
    the address after ``postline gdpr erase`` (by its keyed hash): it is still suppressed.
    """

    def __init__(
        self, bus: Bus, source: str, owns_bus: bool = False, hash_key: bytes | None = None
    ) -> None:
        self._bus = bus
        self._source = source
        self._owns = owns_bus
        self._hash_key = hash_key

    async def __aenter__(self) -> SuppressionAdmin:
        if self._owns:
            await self._bus.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._owns:
            await self._bus.close()

    async def add(
        self,
        address: str,
        reason: SuppressionReason,
        scope: str = "",
        detail: str = "",
        tenant: str = "",
    ) -> Suppression:
        """Suppress ``address`` for every sender, or only ``tenant``'s mail, or only bulk
        mail from ``scope``'s domain (of ``tenant`` if both are given)."""
        record = Suppression(
            address=address.strip().lower(),
            reason=reason,
            source=self._source,
            at=now(),
            scope=scope.strip().lower(),
            detail=detail,
            tenant=tenant.strip().lower(),
            method=self._source,  # the operator's own word: "cli" or "api"
        )
        await self._bus.publish([SUPPRESSIONS.out(record)])
        return record

    async def remove(self, address: str, scope: str = "", tenant: str = "") -> None:
        """Remove ``address`` from one scope (a tombstone on the compacted topic)."""
        await self._bus.publish([removal(address, scope, tenant)])

    async def snapshot(self) -> list[Suppression]:
        """Every suppression now on the list."""
        return decode_table(await self._bus.read_table(SUPPRESSIONS.name))

    async def lookup(self, address: str) -> list[Suppression]:
        """The suppressions of ``address`` (every scope), its erased entries included."""
        wanted = address.strip().lower()
        digest = address_hash(self._hash_key, wanted) if self._hash_key else None
        return [
            s
            for s in await self.snapshot()
            if s.address == wanted or (digest is not None and s.address_hash == digest)
        ]


def removal(address: str, scope: str = "", tenant: str = "") -> OutRecord:
    """The tombstone that removes ``address`` from one scope of the list."""
    return SUPPRESSIONS.tombstone(suppression_key(address.strip(), scope.strip(), tenant.strip()))

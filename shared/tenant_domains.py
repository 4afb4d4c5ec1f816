"""Tenants' sending domains: add one with new DKIM keys, the DNS records to publish, verify.

``postline tenant domain add T D`` validates D, generates an RSA-2048 and an Ed25519 key
(dual signing, RFC 8463: receivers without Ed25519 use the RSA signature), seals both with
the KEK (``shared.sealing``, bound to T, D and the selector) and stores them in T's record
through ``shared.tenant_admin.update`` (which refuses a domain another tenant owns, naming
it, and writes the audit event). Every signer follows ``postline.tenants`` and signs D's next
message with the new keys; nothing restarts. ``verify`` asks DNS (``shared.dnscheck``) and
marks D verified when every record is in place; ingest lets a tenant send only from its
verified domains.

The records (:func:`dns_records`), and why each:

- two DKIM TXT records, ``<selector>._domainkey.D`` (RFC 6376 3.6.2.1, RFC 8463 4.2): the
  public keys receivers check our signatures (``d=D``, aligned with From for DMARC) with;
- the return-path host ``bounces.D`` as a CNAME to the operator's bounce domain
  (``signer.bounce_domain``). A CNAME rather than an MX: the name then takes the operator's
  MX (bounces reach the bouncer), its SPF record (our sending addresses) and any later change
  of either, with one record the tenant never has to touch again; the envelope sender
  ``...@bounces.D`` is relaxed-aligned with ``From: ...@D`` (RFC 7489 3.1.2), so SPF counts
  for DMARC. (A CNAME owns its name, RFC 1034 3.6.2: ``bounces.D`` must hold nothing else);
- SPF for D itself, ``include:<signer.spf_include>``, for mail whose envelope sender is D
  (without VERP);
- DMARC at ``_dmarc.D``, only when D has none: ``p=none`` to start with (monitoring, RFC 7489
  6.3), since tightening it is the domain owner's call.

It does not parse the command line (``shared.cli.tenant_domains``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from shared import tenant_admin
from shared.bus.base import Bus
from shared.dkimkeys import (
    ALGORITHMS,
    Algorithm,
    generate_private_key,
    load_private_key,
    public_p,
    record_name,
    txt_record,
    zone_strings,
)
from shared.dnscheck import (
    FAIL,
    OK,
    Lookup,
    LookupFailed,
    Row,
    SendingPolicy,
    check_bounce_mx,
    check_dmarc,
    check_spf,
    tags,
)
from shared.errors import TenantConflict, TenantInvalid, TenantNotFound
from shared.sealing import KeyRing, associated_data
from shared.tenants import return_path_host
from shared.wire.records import DkimKeyRecord, SendingDomain, Tenant

#: RFC 1035 2.3.4 / RFC 5890: a label is 1-63 octets, a name at most 253 in text form.
MAX_LABEL = 63
MAX_NAME = 253
_LDH = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_SUFFIX: dict[Algorithm, str] = {"rsa": "r", "ed25519": "e"}


@dataclass(frozen=True)
class DomainPolicy:
    """The operator's side of a tenant's DNS: where bounces go and who may send."""

    bounce_domain: str = ""  # the operator's bounce host (the CNAME target)
    spf_include: str = ""
    sending_ips: tuple[str, ...] = ()

    @classmethod
    def from_signer_section(cls, raw: Mapping[str, Any]) -> DomainPolicy:
        """From the raw ``[signer]`` table (``shared`` never imports a stage's config type;
        the signer validates the same keys strictly when it starts)."""
        return cls(
            str(raw.get("bounce_domain", "bounces.localhost")).lower().rstrip("."),
            str(raw.get("spf_include", "")).lower().rstrip("."),
            tuple(str(ip) for ip in raw.get("sending_ips", ())),
        )


@dataclass(frozen=True)
class DnsRecord:
    """One record to publish and what it is for."""

    name: str
    type: str
    value: str
    purpose: str

    def zone_line(self) -> str:
        """The record in zone-file form (TXT values split into 255-octet strings)."""
        value = zone_strings(self.value) if self.type == "TXT" else self.value
        return f"{self.name}. IN {self.type} {value}"


def domain_name(value: str) -> str:
    """``value`` as a lower-case A-label domain (RFC 5890), or :class:`TenantInvalid`."""
    text = value.strip().rstrip(".").lower()
    try:
        ascii_name = text.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise TenantInvalid(f"domain {value!r}: not a valid domain name ({exc})") from exc
    labels = ascii_name.split(".")
    if len(labels) < 2 or len(ascii_name) > MAX_NAME:
        raise TenantInvalid(f"domain {value!r}: expected a registered name like example.com")
    for label in labels:
        if (
            not 0 < len(label) <= MAX_LABEL
            or not set(label) <= _LDH
            or "-" in (label[0], label[-1])
        ):
            raise TenantInvalid(f"domain {value!r}: label {label!r} is not letters, digits, '-'")
    return ascii_name


def selectors(now: float, base: str = "") -> dict[Algorithm, str]:
    """One selector per algorithm, named by month (``pl202612r``, ``pl202612e``) so the next
    rotation's selectors differ, or from ``base`` (``s1`` -> ``s1r``, ``s1e``)."""
    stem = base or time.strftime("pl%Y%m", time.gmtime(now))
    return {algorithm: f"{stem}{_SUFFIX[algorithm]}" for algorithm in ALGORITHMS}


def new_keys(
    keyring: KeyRing, tenant: str, domain: str, now: float, base: str = ""
) -> tuple[DkimKeyRecord, ...]:
    """A new RSA-2048 and Ed25519 key for ``domain``, sealed for ``tenant``."""
    records = []
    for algorithm, selector in selectors(now, base).items():
        pem = generate_private_key(algorithm)
        records.append(
            DkimKeyRecord(
                selector=selector,
                algorithm=algorithm,
                public_key=public_p(load_private_key(pem)),
                sealed_private_key=keyring.seal(pem, associated_data(tenant, domain, selector)),
                created_at=now,
            )
        )
    return tuple(records)


def find(tenant: Tenant, domain: str) -> SendingDomain | None:
    """``tenant``'s sending domain ``domain``, if it has it."""
    return next((d for d in tenant.domains if d.name == domain), None)


async def add_domain(
    bus: Bus,
    keyring: KeyRing,
    tenant_id: str,
    domain: str,
    *,
    now: float,
    by: str,
    bounce_domain: str = "",
    selector: str = "",
) -> SendingDomain:
    """Add ``domain`` to ``tenant_id`` with new keys; adding one it has returns it as it is
    (a retry). Another tenant's domain is a :class:`TenantConflict` naming that tenant."""
    name = domain_name(domain)
    bounce = domain_name(bounce_domain) if bounce_domain else ""
    tenants = await tenant_admin.read_all(bus)
    if tenant_id not in tenants:
        raise TenantNotFound(f"no tenant {tenant_id!r}")
    for other in tenants.values():
        if other.id != tenant_id and find(other, name):
            raise TenantConflict(f"domain {name!r} belongs to tenant {other.id!r}")
    existing = find(tenants[tenant_id], name)
    if existing is not None:
        return existing
    added = SendingDomain(
        name=name, bounce_domain=bounce, dkim=new_keys(keyring, tenant_id, name, now, selector)
    )

    def change(tenant: Tenant) -> Tenant:
        if find(tenant, name):
            return tenant
        return msgspec.structs.replace(tenant, domains=(*tenant.domains, added))

    tenant = await tenant_admin.update(bus, tenant_id, change, by=by, detail=f"domain add {name}")
    return find(tenant, name) or added


async def remove_domain(bus: Bus, tenant_id: str, domain: str, *, by: str) -> bool:
    """Remove ``domain`` (and its keys) from ``tenant_id``; whether it was there."""
    name = domain_name(domain)
    before = await tenant_admin.get(bus, tenant_id)

    def change(tenant: Tenant) -> Tenant:
        kept = tuple(d for d in tenant.domains if d.name != name)
        return msgspec.structs.replace(tenant, domains=kept)

    await tenant_admin.update(bus, tenant_id, change, by=by, detail=f"domain remove {name}")
    return find(before, name) is not None


async def mark_verified(
    bus: Bus, tenant_id: str, domain: str, *, verified: bool, now: float, by: str
) -> None:
    """Record the outcome of a verification (a failed one after a success un-verifies)."""

    def change(tenant: Tenant) -> Tenant:
        domains = tuple(
            msgspec.structs.replace(
                d, verified=verified, verified_at=now if verified else d.verified_at
            )
            if d.name == domain and d.verified != verified
            else d
            for d in tenant.domains
        )
        return msgspec.structs.replace(tenant, domains=domains)

    await tenant_admin.update(
        bus,
        tenant_id,
        change,
        by=by,
        detail=f"domain {'' if verified else 'un'}verified {domain}",
    )


def dns_records(
    domain: SendingDomain, policy: DomainPolicy, *, has_dmarc: bool = False
) -> list[DnsRecord]:
    """Every record to publish for ``domain`` (see the module docstring for why each)."""
    records = [
        DnsRecord(
            record_name(key.selector, domain.name),
            "TXT",
            txt_record(key.algorithm, key.public_key),  # type: ignore[arg-type]
            f"DKIM public key ({key.algorithm}): receivers verify our d={domain.name} signatures",
        )
        for key in domain.dkim
    ]
    host = return_path_host(domain)
    if policy.bounce_domain and host != policy.bounce_domain:
        records.append(
            DnsRecord(
                host,
                "CNAME",
                f"{policy.bounce_domain}.",
                "return path: takes our MX (bounces come back) and SPF; aligned with "
                f"{domain.name} for DMARC",
            )
        )
    if policy.spf_include:
        records.append(
            DnsRecord(
                domain.name,
                "TXT",
                f"v=spf1 include:{policy.spf_include} ~all",
                "SPF for mail with this domain as envelope sender (merge the include into "
                "an existing v=spf1 record: a domain may have only one)",
            )
        )
    if not has_dmarc:
        records.append(
            DnsRecord(
                f"_dmarc.{domain.name}",
                "TXT",
                "v=DMARC1; p=none; adkim=r; aspf=r",
                "DMARC (none yet): p=none monitors; move to quarantine/reject when reports "
                "show only your mail",
            )
        )
    return records


async def has_dmarc(lookup: Lookup, domain: str) -> bool:
    """Whether ``_dmarc.<domain>`` already has a DMARC record (a failed lookup: no)."""
    try:
        records = await lookup.txt(f"_dmarc.{domain}")
    except LookupFailed:
        return False
    return any(r.lower().startswith("v=dmarc1") for r in records)


async def verify_rows(lookup: Lookup, domain: SendingDomain, policy: DomainPolicy) -> list[Row]:
    """Each DKIM key published as stored, the return path's SPF (includes walked, RFC 7208
    limits) and MX, and DMARC; a ``FAIL`` row means not verified."""
    rows = [await _check_key(lookup, domain.name, key) for key in domain.dkim]
    host = return_path_host(domain)
    sending = SendingPolicy(policy.spf_include, policy.sending_ips)
    rows.append(await check_spf(lookup, host, sending, "spf return path"))
    rows.append(await check_bounce_mx(lookup, host))
    rows += await check_dmarc(lookup, domain.name, host)
    return rows


async def _check_key(lookup: Lookup, domain: str, key: DkimKeyRecord) -> Row:
    name = record_name(key.selector, domain)
    check = f"dkim {key.selector}"
    try:
        records = [r for r in await lookup.txt(name) if "p=" in r]
    except LookupFailed as exc:
        return Row(check, FAIL, f"lookup failed: {exc}")
    if not records:
        return Row(check, FAIL, f"no TXT record at {name}")
    published = tags(records[0])
    if published.get("p") != key.public_key or published.get("k", "rsa") != key.algorithm:
        return Row(check, FAIL, f"{name} publishes another key than {key.algorithm} {key.selector}")
    return Row(check, OK, f"{key.algorithm} key at {name} matches")

"""Tenants' DKIM keys for the signer: opened from ``postline.tenants`` as tenants change.

A key added with ``postline tenant domain add`` is sealed (``shared.sealing``) in the tenant's
record; the signer's :class:`~shared.tenants.TenantTable` sees the change within the follow
latency and :func:`tenant_keys` opens that tenant's keys with the KEK into the key store,
beside the key directory, so the next message from the domain is signed with them: no
restart, no redeploy. Pool workers get the sealed bytes in each job's key reference and open
them with the same KEK (:func:`open_key`), so no private key crosses a process boundary in
the clear.

A key that does not open (another KEK, a record moved to another domain, a type or size we
refuse) is reported and left out; the tenant's other keys still work. It does not choose
keys per message (``keys.py``, ``pipeline.py``).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import rsa

from services.signer.keys import MIN_RSA_BITS, SigningKey
from shared.dkimkeys import ALGORITHMS, Algorithm, algorithm_of, load_private_key
from shared.errors import SealError
from shared.sealing import KeyRing, associated_data
from shared.wire.records import DkimKeyRecord, Tenant


def open_key(keyring: KeyRing, tenant: str, domain: str, record: DkimKeyRecord) -> SigningKey:
    """The signing key sealed in ``record`` for ``domain`` of ``tenant``; :class:`SealError`
    when it does not open or is not a key we sign with."""
    pem = keyring.open(record.sealed_private_key, associated_data(tenant, domain, record.selector))
    try:
        private = load_private_key(pem)
    except ValueError as exc:
        raise SealError(f"sealed key is not a private key: {exc}") from exc
    if record.algorithm not in ALGORITHMS or algorithm_of(private) != record.algorithm:
        raise SealError(f"sealed key is not an {record.algorithm} key")
    if isinstance(private, rsa.RSAPrivateKey) and private.key_size < MIN_RSA_BITS:
        raise SealError(f"RSA key of {private.key_size} bits refused (RFC 8301 3.2)")
    algorithm: Algorithm = algorithm_of(private)
    return SigningKey(
        domain=domain.lower(),
        selector=record.selector,
        algorithm=algorithm,
        private=private,
        not_before=record.not_before,
        not_after=record.not_after or None,
        tenant=tenant,
        sealed=record.sealed_private_key,
    )


def tenant_keys(tenant: Tenant, keyring: KeyRing | None) -> tuple[list[SigningKey], list[str]]:
    """Every key of ``tenant``'s sending domains that opens, and one problem line per key
    that does not (naming tenant, domain and selector)."""
    keys: list[SigningKey] = []
    problems: list[str] = []
    for domain in tenant.domains:
        for record in domain.dkim:
            where = f"tenant {tenant.id} {record.selector}._domainkey.{domain.name}"
            if keyring is None:
                problems.append(f"{where}: no KEK (secrets.kek_file) to open it with")
                continue
            try:
                keys.append(open_key(keyring, tenant.id, domain.name, record))
            except SealError as exc:
                problems.append(f"{where}: {exc}")
    return keys, problems


def has_sealed_keys(tenants: list[Tenant]) -> bool:
    """Whether any tenant holds a DKIM key (then the signer needs the KEK)."""
    return any(domain.dkim for tenant in tenants for domain in tenant.domains)

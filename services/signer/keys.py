"""DKIM private keys from a directory: parsed once, reloaded when the files change.

Layout (flat, so a Kubernetes Secret mounted as a volume works as is; Secret keys cannot
hold ``/``): one PEM file per selector, named after its DNS record plus the algorithm::

    <selector>._domainkey.<domain>.rsa.pem        RSA (PKCS#8 or PKCS#1), >= 2048 bits
    <selector>._domainkey.<domain>.ed25519.pem    Ed25519 (PKCS#8), RFC 8463
    <selector>._domainkey.<domain>.toml           optional: not_before / not_after

The optional TOML sidecar holds RFC 3339 times, e.g. ``not_before = 2026-12-01T00:00:00Z``.
Before ``not_before`` a key is loaded but not used, which makes rotation three steps:
publish the new selector's TXT record, drop the key file in with a ``not_before`` a few
days ahead (``postline dkim check`` confirms the record), and it takes over at that time.
A key past ``not_after`` is no longer used. For each domain and algorithm the signer uses
the usable key with the latest ``not_before`` (a key without one counts as valid since the
epoch); a tie, such as two keys without a sidecar, goes to the alphabetically last selector,
so name selectors by date (``s202612``) or give the new one a ``not_before``.

Files are parsed with ``cryptography`` once; :meth:`KeyStore.refresh` compares a cheap
``stat`` fingerprint and reloads only when something changed. A key that cannot be used
(unparsable, RSA below 2048 bits, a name we do not understand) is a :class:`ConfigError`
at startup; on a later reload it is reported and the previous key set stays in use.

This module does not sign (``dkim.py``) and does not talk DNS (``dnscheck.py``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from shared.dkimkeys import (
    ALGORITHMS,
    MIN_RSA_BITS,
    Algorithm,
    generate_private_key,
    load_private_key,
    public_p,
    txt_record,
)
from shared.errors import ConfigError

# The key directory's users (commands, tests, the harness) name the key helpers through
# this module; they live in shared.dkimkeys because the tenant domain commands need them too.
__all__ = [
    "ALGORITHMS",
    "MIN_RSA_BITS",
    "Algorithm",
    "Fingerprint",
    "KeyStore",
    "SigningKey",
    "generate_private_key",
    "key_filename",
    "parse_key_file",
    "write_private_key",
]

_MARK = "._domainkey."
_A_TAG: dict[Algorithm, bytes] = {"rsa": b"rsa-sha256", "ed25519": b"ed25519-sha256"}
_PKCS1 = padding.PKCS1v15()
_PREHASHED = Prehashed(hashes.SHA256())

Fingerprint = tuple[tuple[str, int, int, int], ...]


@dataclass(frozen=True)
class SigningKey:
    """One selector's private key, parsed, with its validity window."""

    domain: str
    selector: str
    algorithm: Algorithm
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    path: Path | None = None  # None: a tenant's key (``tenant``), not a file
    not_before: float = 0.0
    not_after: float | None = None
    tenant: str = ""  # the tenant whose sending domain this key is ("" = key directory)
    sealed: bytes = b""  # a tenant key as stored (shared.sealing): what pool workers open

    @property
    def a_tag(self) -> bytes:
        """The ``a=`` value of signatures made with this key."""
        return _A_TAG[self.algorithm]

    @property
    def name(self) -> str:
        """The DNS name of the public key record."""
        return f"{self.selector}{_MARK}{self.domain}"

    def usable(self, now: float) -> bool:
        """Whether the key may sign at ``now`` (inside its not_before / not_after window)."""
        return self.not_before <= now and (self.not_after is None or now < self.not_after)

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign a SHA-256 digest of the canonicalised header block with OpenSSL.

        RSA: RSASSA-PKCS1-v1_5 over the digest (RFC 6376 3.3.1). Ed25519: PureEdDSA over
        the 32-byte SHA-256 digest, as RFC 8463 section 3 defines ed25519-sha256.
        """
        if isinstance(self.private, rsa.RSAPrivateKey):
            return self.private.sign(digest, _PKCS1, _PREHASHED)
        return self.private.sign(digest)

    def public_p(self) -> str:
        """The ``p=`` value: base64 SubjectPublicKeyInfo (RSA) or raw key (RFC 8463 4.2)."""
        return public_p(self.private)

    def txt_record(self) -> str:
        """The TXT record value to publish at :attr:`name` (RFC 6376 3.6.1)."""
        return txt_record(self.algorithm, self.public_p())


def key_filename(domain: str, selector: str, algorithm: Algorithm) -> str:
    """The file name a key for ``selector`` of ``domain`` must have."""
    return f"{selector}{_MARK}{domain.lower()}.{algorithm}.pem"


def write_private_key(directory: Path, filename: str, pem: bytes) -> Path:
    """Write a key file readable by its owner only (0600), refusing to overwrite one."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return path


def parse_key_file(path: Path, source: str = "signer.keys_dir") -> SigningKey:
    """Parse one key file (and its sidecar); raises :class:`ConfigError` naming the file."""
    base, algorithm = _split_name(path.name, path)
    selector, _, domain = base.partition(_MARK)
    try:
        private = load_private_key(path.read_bytes())
    except ValueError as exc:
        raise ConfigError(str(path), source, f"not an unencrypted PEM private key: {exc}") from exc
    except OSError as exc:
        raise ConfigError(str(path), source, f"cannot read: {exc.strerror}") from exc
    if algorithm == "rsa":
        if not isinstance(private, rsa.RSAPrivateKey):
            raise ConfigError(str(path), source, "named .rsa.pem but is not an RSA key")
        if private.key_size < MIN_RSA_BITS:
            raise ConfigError(
                str(path),
                source,
                f"RSA key of {private.key_size} bits refused: at least {MIN_RSA_BITS} required",
            )
    elif not isinstance(private, ed25519.Ed25519PrivateKey):
        raise ConfigError(str(path), source, "named .ed25519.pem but is not an Ed25519 key")
    not_before, not_after = _read_sidecar(path.with_name(f"{base}.toml"))
    return SigningKey(
        domain=domain.lower(),
        selector=selector,
        algorithm=algorithm,
        private=private,
        path=path,
        not_before=not_before,
        not_after=not_after,
    )


def _split_name(name: str, path: Path) -> tuple[str, Algorithm]:
    stem = name.removesuffix(".pem")
    base, _, suffix = stem.rpartition(".")
    selector, mark, domain = base.partition(_MARK)
    if suffix not in ALGORITHMS or not mark or not selector or "." not in domain:
        raise ConfigError(
            str(path),
            "signer.keys_dir",
            "key files must be named <selector>._domainkey.<domain>.<rsa|ed25519>.pem",
        )
    return base, suffix


def _read_sidecar(path: Path) -> tuple[float, float | None]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return 0.0, None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(path), "", f"cannot read key sidecar: {exc}") from exc
    unknown = set(data) - {"not_before", "not_after"}
    if unknown:
        raise ConfigError(str(path), sorted(unknown)[0], "unknown key (not_before, not_after)")
    not_after = data.get("not_after")
    return (
        _timestamp(path, "not_before", data.get("not_before")),
        None if not_after is None else _timestamp(path, "not_after", not_after),
    )


def _timestamp(path: Path, key: str, value: object) -> float:
    if value is None:
        return 0.0
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.timestamp()
    raise ConfigError(
        str(path), key, "expected an RFC 3339 time with offset, e.g. 2026-12-01T00:00:00Z"
    )


class KeyStore:
    """The keys of one directory, indexed by domain; see the module docstring."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._keys: dict[str, tuple[SigningKey, ...]] = {}
        # Tenants' keys (tenantkeys.py), by tenant, and the same by domain for lookups.
        self._by_tenant: dict[str, tuple[SigningKey, ...]] = {}
        self._tenant_domains: dict[str, tuple[SigningKey, ...]] = {}
        self._fingerprint: Fingerprint = ()
        self.last_error: ConfigError | None = None

    @property
    def fingerprint(self) -> Fingerprint:
        """(name, mtime, inode, size) of every file, as of the last successful load."""
        return self._fingerprint

    def load(self) -> None:
        """Parse every key file now; raises :class:`ConfigError` on the first bad one."""
        fingerprint = self._scan()
        keys = [
            parse_key_file(self.directory / name)
            for name, *_ in fingerprint
            if name.endswith(".pem")
        ]
        by_domain: dict[str, list[SigningKey]] = {}
        for key in keys:
            found = by_domain.setdefault(key.domain, [])
            if any(other.selector == key.selector for other in found):
                # One selector is one TXT record (RFC 6376 3.6.2.1): one key per selector.
                raise ConfigError(
                    str(key.path),
                    "signer.keys_dir",
                    f"selector {key.selector!r} of {key.domain} already has a key; "
                    "use a different selector per algorithm",
                )
            found.append(key)
        self._keys = {domain: tuple(found) for domain, found in by_domain.items()}
        self._fingerprint = fingerprint
        self.last_error = None

    def refresh(self) -> bool:
        """Reload when any file changed; ``True`` when the key set was replaced.

        A bad file keeps the previous keys in use and is kept in :attr:`last_error`.
        """
        try:
            if self._scan() == self._fingerprint:
                return False
            self.load()
        except ConfigError as exc:
            self.last_error = exc
            return False
        return True

    def _scan(self) -> Fingerprint:
        try:
            entries = sorted(os.scandir(self.directory), key=lambda e: e.name)
        except FileNotFoundError:
            return ()  # no keys yet: every domain falls back (or fails, per allow_unsigned)
        except OSError as exc:
            raise ConfigError(
                str(self.directory), "signer.keys_dir", f"cannot list: {exc.strerror}"
            ) from exc
        found = []
        for entry in entries:
            # Kubernetes Secret volumes hold ..data and timestamped dirs; the visible names
            # are symlinks into them, and stat() follows them to the current version.
            if entry.name.startswith(".") or not entry.name.endswith((".pem", ".toml")):
                continue
            st = entry.stat()
            found.append((entry.name, st.st_mtime_ns, st.st_ino, st.st_size))
        return tuple(found)

    def all_keys(self) -> list[SigningKey]:
        """Every key of the directory, usable now or not (tenants' keys: :meth:`tenant_keys`;
        they are not per-selector metrics, whose series would grow with the tenants)."""
        return [key for keys in self._keys.values() for key in keys]

    def tenant_keys(self) -> list[SigningKey]:
        """Every tenant key in use."""
        return [key for keys in self._by_tenant.values() for key in keys]

    def set_tenant_keys(self, tenant: str, keys: Iterable[SigningKey]) -> None:
        """Replace the keys of ``tenant`` (none: its keys are gone)."""
        found = tuple(keys)
        if found:
            self._by_tenant[tenant] = found
        else:
            self._by_tenant.pop(tenant, None)
        by_domain: dict[str, list[SigningKey]] = {}
        for key in self.tenant_keys():
            by_domain.setdefault(key.domain, []).append(key)
        self._tenant_domains = {domain: tuple(found) for domain, found in by_domain.items()}

    def keys_of(self, domain: str) -> tuple[SigningKey, ...]:
        """Every loaded key of ``domain``: the directory's and its tenant's. Both count the
        same when choosing (newest ``not_before``, then selector), so a domain can move from
        the directory to a tenant by adding the tenant's keys and then removing the files."""
        domain = domain.lower()
        return self._keys.get(domain, ()) + self._tenant_domains.get(domain, ())

    def signing_keys(self, domain: str, now: float) -> list[SigningKey]:
        """The keys to sign with for ``domain`` at ``now``: newest usable one per algorithm,
        RSA first (dual signing when both exist; receivers without Ed25519 skip it)."""
        return _newest_per_algorithm(self.keys_of(domain), now)

    def get(self, domain: str, selector: str, algorithm: Algorithm) -> SigningKey | None:
        """A key by its identity (what a signing worker is told to use)."""
        for key in self.keys_of(domain):
            if key.selector == selector and key.algorithm == algorithm:
                return key
        return None


def _newest_per_algorithm(keys: Iterable[SigningKey], now: float) -> list[SigningKey]:
    best: dict[Algorithm, SigningKey] = {}
    for key in keys:
        if not key.usable(now):
            continue
        current = best.get(key.algorithm)
        if current is None or (key.not_before, key.selector) > (
            current.not_before,
            current.selector,
        ):
            best[key.algorithm] = key
    return [best[alg] for alg in ALGORITHMS if alg in best]

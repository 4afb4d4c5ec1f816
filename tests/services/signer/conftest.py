"""Fixtures for the signer tests: a key directory and a DKIM verifier that asks real DNS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import dkim
import dns.resolver
import pytest

from services.signer.keys import (
    Algorithm,
    KeyStore,
    generate_private_key,
    key_filename,
    write_private_key,
)

DOMAIN = "example.test"
SECRET = b"0123456789abcdef-test-secret"


def add_key(
    directory: Path, domain: str, selector: str, algorithm: Algorithm, sidecar: str = ""
) -> Path:
    """Write a new key file (and optional TOML sidecar) into ``directory``."""
    path = write_private_key(
        directory, key_filename(domain, selector, algorithm), generate_private_key(algorithm)
    )
    if sidecar:
        (directory / f"{selector}._domainkey.{domain}.toml").write_text(sidecar)
    return path


@pytest.fixture(scope="session")
def session_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RSA selector ``r1`` and Ed25519 selector ``e1`` for example.test (generated once)."""
    directory = tmp_path_factory.mktemp("dkim")
    add_key(directory, DOMAIN, "r1", "rsa")
    add_key(directory, DOMAIN, "e1", "ed25519")
    return directory


@pytest.fixture
def keys_dir(session_keys: Path, tmp_path: Path) -> Path:
    """A private copy of the session keys, so a test may add or change files."""
    directory = tmp_path / "dkim"
    directory.mkdir()
    for path in session_keys.iterdir():
        target = directory / path.name
        target.write_bytes(path.read_bytes())
        target.chmod(0o600)
    return directory


@pytest.fixture
def store(keys_dir: Path) -> KeyStore:
    """A loaded key store on :func:`keys_dir`."""
    loaded = KeyStore(keys_dir)
    loaded.load()
    return loaded


def dns_records(store: KeyStore) -> dict[str, list[tuple[str, str]]]:
    """The TXT records publishing every key of ``store``."""
    return {key.name: [("TXT", f'"{key.txt_record()}"')] for key in store.all_keys()}


def txt_lookup(port: int) -> Callable[..., bytes | None]:
    """A dkimpy ``dnsfunc`` that asks the loopback DNS server with dnspython."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        try:
            answer = resolver.resolve(name.decode(), "TXT", lifetime=timeout)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return b"".join(answer[0].strings)

    return lookup


async def verify(message: bytes, port: int, index: int = 0) -> bool:
    """Whether dkimpy's verifier accepts signature ``index`` (keys from real DNS)."""
    lookup = txt_lookup(port)

    def run() -> bool:
        try:
            return bool(dkim.DKIM(message).verify(index, dnsfunc=lookup))
        except dkim.DKIMException:
            return False

    # dkimpy is synchronous; the DNS server runs on this loop, so verify off the loop.
    return await asyncio.to_thread(run)


def now() -> float:
    """The current time (a helper so tests read the same clock as the code)."""
    return time.time()

"""The key directory: parsing once, refusing weak keys, not-before rotation, live reload."""

from __future__ import annotations

import os
import stat
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.signer.dkim import sign_message
from services.signer.keys import KeyStore, generate_private_key, key_filename, write_private_key
from shared.errors import ConfigError
from testing.dnsserver import DnsServer
from tests.services.signer.conftest import DOMAIN, add_key, dns_records, verify

PLAIN = b"From: a@example.test\r\nTo: b@dest.test\r\nSubject: x\r\n\r\nbody\r\n"
DEC_1 = 1_796_083_200.0  # 2026-12-01T00:00:00Z


def test_loads_both_algorithms(store: KeyStore) -> None:
    keys = store.signing_keys(DOMAIN, time.time())
    assert [(k.selector, k.algorithm) for k in keys] == [("r1", "rsa"), ("e1", "ed25519")]
    assert store.signing_keys("other.test", time.time()) == []
    assert store.keys_of("EXAMPLE.test") == store.keys_of(DOMAIN)


def test_txt_record_shapes(store: KeyStore) -> None:
    rsa_key, ed_key = store.signing_keys(DOMAIN, time.time())
    assert rsa_key.txt_record().startswith("v=DKIM1; k=rsa; p=MIIBIjAN")  # SPKI, 2048 bits
    assert ed_key.txt_record().startswith("v=DKIM1; k=ed25519; p=")
    assert len(ed_key.public_p()) == 44  # 32 raw bytes, RFC 8463 section 4.2


def test_rsa_below_2048_bits_is_refused(keys_dir: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = weak.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    write_private_key(keys_dir, key_filename("weak.test", "old", "rsa"), pem)
    with pytest.raises(ConfigError, match="1024 bits refused: at least 2048"):
        KeyStore(keys_dir).load()


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("r9.example.test.rsa.pem", None, "must be named"),
        ("r9._domainkey.example.test.dsa.pem", None, "must be named"),
        ("r9._domainkey.example.test.rsa.pem", b"not a key", "not an unencrypted PEM"),
        ("r9._domainkey.example.test.rsa.pem", "ed25519", "not an RSA key"),
        ("r1._domainkey.example.test.ed25519.pem", "ed25519", "already has a key"),
    ],
)
def test_bad_key_files_name_the_file(
    keys_dir: Path, name: str, content: bytes | str | None, problem: str
) -> None:
    data = generate_private_key("ed25519") if content in (None, "ed25519") else content
    assert isinstance(data, bytes)
    (keys_dir / name).write_bytes(data)
    with pytest.raises(ConfigError, match=problem) as info:
        KeyStore(keys_dir).load()
    assert str(keys_dir) in str(info.value)  # names the offending file


def test_missing_directory_is_empty(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "absent")
    store.load()
    assert store.all_keys() == []


def test_not_before_rotation(keys_dir: Path) -> None:
    add_key(keys_dir, DOMAIN, "r2", "rsa", sidecar="not_before = 2026-12-01T00:00:00Z\n")
    store = KeyStore(keys_dir)
    store.load()
    before = store.signing_keys(DOMAIN, DEC_1 - 1)
    after = store.signing_keys(DOMAIN, DEC_1)
    assert [k.selector for k in before] == ["r1", "e1"]
    assert [k.selector for k in after] == ["r2", "e1"]


def test_not_after_retires_a_key(keys_dir: Path) -> None:
    (keys_dir / "e1._domainkey.example.test.toml").write_text(
        "not_after = 2026-12-01T00:00:00+00:00\n"
    )
    store = KeyStore(keys_dir)
    store.load()
    assert [k.selector for k in store.signing_keys(DOMAIN, DEC_1 - 1)] == ["r1", "e1"]
    assert [k.selector for k in store.signing_keys(DOMAIN, DEC_1)] == ["r1"]


@pytest.mark.parametrize(
    "sidecar", ["not_before = 2026-12-01T00:00:00\n", "expires = 1\n", "not toml ="]
)
def test_bad_sidecar_is_refused(keys_dir: Path, sidecar: str) -> None:
    (keys_dir / "r1._domainkey.example.test.toml").write_text(sidecar)
    with pytest.raises(ConfigError):
        KeyStore(keys_dir).load()


async def test_rotated_signatures_verify_with_both_records_published(keys_dir: Path) -> None:
    switch = int(time.time()) - 3600  # in the past: verifiers refuse t= in the future
    stamp = datetime.fromtimestamp(switch, UTC).isoformat()
    add_key(keys_dir, DOMAIN, "r2", "rsa", sidecar=f"not_before = {stamp}\n")
    store = KeyStore(keys_dir)
    store.load()
    old = sign_message(PLAIN, store.signing_keys(DOMAIN, switch - 60)[:1], switch - 60)
    new = sign_message(PLAIN, store.signing_keys(DOMAIN, switch + 60)[:1], switch + 60)
    assert b"s=r1;" in old
    assert b"s=r2;" in new
    async with DnsServer(dns_records(store)) as dns:
        assert await verify(old + PLAIN, dns.port)
        assert await verify(new + PLAIN, dns.port)


def test_refresh_reloads_changed_files_only(keys_dir: Path) -> None:
    store = KeyStore(keys_dir)
    store.load()
    assert not store.refresh()
    add_key(keys_dir, "second.test", "s1", "ed25519")
    assert store.refresh()
    assert [k.selector for k in store.signing_keys("second.test", time.time())] == ["s1"]
    os.remove(keys_dir / key_filename("second.test", "s1", "ed25519"))
    assert store.refresh()
    assert store.signing_keys("second.test", time.time()) == []


def test_refresh_keeps_previous_keys_when_a_file_is_bad(keys_dir: Path) -> None:
    store = KeyStore(keys_dir)
    store.load()
    (keys_dir / "bad._domainkey.example.test.rsa.pem").write_bytes(b"garbage")
    assert not store.refresh()
    assert store.last_error is not None
    assert len(store.signing_keys(DOMAIN, time.time())) == 2
    os.remove(keys_dir / "bad._domainkey.example.test.rsa.pem")
    assert not store.refresh()  # back to the loaded state: nothing to replace
    assert store.last_error is not None  # cleared only by the next successful load


def test_written_keys_are_owner_only_and_never_overwritten(tmp_path: Path) -> None:
    path = write_private_key(tmp_path, "k.pem", generate_private_key("ed25519"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        write_private_key(tmp_path, "k.pem", b"x")


def test_tie_without_not_before_goes_to_the_last_selector(keys_dir: Path) -> None:
    add_key(keys_dir, DOMAIN, "s202612", "rsa")
    store = KeyStore(keys_dir)
    store.load()
    assert [k.selector for k in store.signing_keys(DOMAIN, time.time())] == ["s202612", "e1"]

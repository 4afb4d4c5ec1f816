"""Sealing tenants' DKIM keys: round trip, wrong KEK, moved records, KEK rotation, files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.config import load_config
from shared.errors import ConfigError, SealError
from shared.sealing import (
    KeyRing,
    associated_data,
    ensure_kek,
    load_keyring,
    load_keyring_if_present,
)

PEM = b"-----BEGIN PRIVATE KEY-----\nnot really\n-----END PRIVATE KEY-----\n"
AAD = associated_data("shop", "shop.example", "pl202612r")


def ring() -> KeyRing:
    return KeyRing(os.urandom(32))


def test_round_trip_and_fresh_nonce_per_seal() -> None:
    keys = ring()
    first, second = keys.seal(PEM, AAD), keys.seal(PEM, AAD)
    assert first != second  # a new nonce every time (GCM must never reuse one)
    assert PEM not in first
    assert keys.open(first, AAD) == keys.open(second, AAD) == PEM


def test_wrong_kek_refused() -> None:
    sealed = ring().seal(PEM, AAD)
    with pytest.raises(SealError, match="does not open"):
        ring().open(sealed, AAD)


@pytest.mark.parametrize(
    "moved",
    [
        ("other", "shop.example", "pl202612r"),  # another tenant
        ("shop", "other.example", "pl202612r"),  # another domain
        ("shop", "shop.example", "pl202612e"),  # another selector
    ],
)
def test_record_moved_elsewhere_refused(moved: tuple[str, str, str]) -> None:
    keys = ring()
    sealed = keys.seal(PEM, AAD)
    with pytest.raises(SealError):
        keys.open(sealed, associated_data(*moved))


def test_tampered_or_short_refused() -> None:
    keys = ring()
    sealed = bytearray(keys.seal(PEM, AAD))
    sealed[-1] ^= 1
    with pytest.raises(SealError):
        keys.open(bytes(sealed), AAD)
    with pytest.raises(SealError, match="too short"):
        keys.open(b"abc", AAD)


def test_rotation_opens_with_previous_seals_with_current() -> None:
    old = ring()
    sealed_before = old.seal(PEM, AAD)
    rotated = KeyRing(os.urandom(32), (old.current,))
    assert rotated.open(sealed_before, AAD) == PEM
    sealed_after = rotated.seal(PEM, AAD)
    with pytest.raises(SealError):
        old.open(sealed_after, AAD)  # new seals use the new KEK only


def test_files_created_for_run_and_read_with_previous(tmp_path: Path) -> None:
    config_file = tmp_path / "postline.toml"
    config_file.write_text(f'[runtime]\ndata_dir = "{tmp_path / "data"}"\n')
    config = load_config(config_file, environ={})
    assert load_keyring_if_present(config) is None
    assert ensure_kek(config) == [
        f"secrets: wrote a new key-encryption key to {tmp_path / 'data/secrets/kek.key'}"
    ]
    assert ensure_kek(config) == []  # never replaced
    kek_path = tmp_path / "data/secrets/kek.key"
    assert kek_path.stat().st_mode & 0o777 == 0o600
    first = load_keyring(config)
    old = tmp_path / "old.key"
    old.write_text("ab" * 32 + "\n")
    config_file.write_text(
        f'[runtime]\ndata_dir = "{tmp_path / "data"}"\n'
        f'[secrets]\nkek_file = "{kek_path}"\nkek_previous_files = ["{old}"]\n'
    )
    rotated = load_keyring(load_config(config_file, environ={}))
    assert rotated.current == first.current
    assert rotated.previous == (bytes.fromhex("ab" * 32),)


@pytest.mark.parametrize(("content", "problem"), [("xyz", "not hex"), ("ab" * 8, "8 bytes")])
def test_bad_kek_file_names_the_key(tmp_path: Path, content: str, problem: str) -> None:
    kek = tmp_path / "kek.key"
    kek.write_text(content)
    config_file = tmp_path / "postline.toml"
    config_file.write_text(f'[secrets]\nkek_file = "{kek}"\n')
    with pytest.raises(ConfigError, match=f"secrets.kek_file: .*{problem}"):
        load_keyring(load_config(config_file, environ={}))

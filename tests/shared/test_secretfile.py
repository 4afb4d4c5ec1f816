"""``shared.secretfile``: a missing secret is created once, private, and never replaced."""

from __future__ import annotations

from pathlib import Path

from shared.secretfile import SECRET_BYTES, ensure_secret_file


def test_creates_a_private_random_secret_with_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "verp.key"
    assert ensure_secret_file(path)
    value = path.read_text().strip()
    assert len(value) == 2 * SECRET_BYTES and int(value, 16) >= 0
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_never_replaces_an_existing_secret(tmp_path: Path) -> None:
    path = tmp_path / "verp.key"
    path.write_text("the operator's secret\n")
    assert not ensure_secret_file(path)
    assert path.read_text() == "the operator's secret\n"


def test_two_secrets_differ(tmp_path: Path) -> None:
    ensure_secret_file(tmp_path / "a")
    ensure_secret_file(tmp_path / "b")
    assert (tmp_path / "a").read_text() != (tmp_path / "b").read_text()

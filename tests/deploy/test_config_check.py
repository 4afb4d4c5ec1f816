"""deploy/check/config_check.py: the sample config through the real ``postline config check``."""

from __future__ import annotations

from pathlib import Path

import config_check


def test_the_sample_passes() -> None:
    assert config_check.check() == []


def test_materialised_files_exist(tmp_path: Path) -> None:
    config_check.materialise(tmp_path)
    for name in ("tls/tls.crt", "tls/tls.key", "users/users.json", "hmac/verp.key", "admin/token"):
        assert (tmp_path / name).is_file(), name
    assert b"BEGIN CERTIFICATE" in (tmp_path / "tls/tls.crt").read_bytes()


def test_an_unknown_key_fails_naming_it(tmp_path: Path) -> None:
    sample = tmp_path / "postline.toml"
    sample.write_text(
        config_check.SAMPLE.read_text().replace("[deliverer]\n", '[deliverer]\nehlo = "typo"\n')
    )
    [problem] = config_check.check(sample)
    assert problem.startswith(f"postline config check {sample}:")
    assert "deliverer.ehlo: unknown key" in problem


def test_a_path_outside_the_mounts_fails(tmp_path: Path) -> None:
    sample = tmp_path / "postline.toml"
    sample.write_text(
        config_check.SAMPLE.read_text().replace("/etc/postline/tls/tls.crt", "/srv/tls/tls.crt")
    )
    [problem] = config_check.check(sample)
    assert "ingest.tls.cert" in problem and "/srv/tls/tls.crt" in problem

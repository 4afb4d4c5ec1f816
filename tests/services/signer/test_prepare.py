"""The signer's ``postline run`` preparation: secret file, a DKIM key, its DNS record."""

from __future__ import annotations

from pathlib import Path

from services.signer.keys import KeyStore
from services.signer.prepare import default_selector, prepare
from shared.config import load_config
from shared.secretfile import read_secret

AT = 1795818566.0  # 2026-11-27


def config_for(tmp_path: Path, domain: str = "postline.localhost") -> Path:
    path = tmp_path / "postline.toml"
    path.write_text(
        f'[signer]\nkeys_dir = "{tmp_path / "dkim"}"\nsigning_domain = "{domain}"\n'
        f'secret_file = "{tmp_path / "verp.key"}"\n'
    )
    return path


def test_first_start_creates_secret_and_key_and_prints_the_record(tmp_path: Path) -> None:
    config = load_config(config_for(tmp_path))
    lines = prepare(config)
    assert len(read_secret(tmp_path / "verp.key", "signer.secret_file", "t.toml")) == 64
    store = KeyStore(tmp_path / "dkim")
    store.load()
    (key,) = store.keys_of("postline.localhost")
    assert (key.algorithm, key.selector) == ("rsa", default_selector())
    assert key.path.stat().st_mode & 0o777 == 0o600
    record = next(line for line in lines if "IN TXT" in line)
    assert record.strip().startswith(f"{key.name}. IN TXT ")
    assert key.public_p()[:200] in record.replace('" "', "")


def test_later_starts_keep_the_key_and_the_secret(tmp_path: Path) -> None:
    config = load_config(config_for(tmp_path))
    prepare(config)
    secret = (tmp_path / "verp.key").read_bytes()
    keys = sorted((tmp_path / "dkim").iterdir())
    lines = prepare(config)
    assert (tmp_path / "verp.key").read_bytes() == secret
    assert sorted((tmp_path / "dkim").iterdir()) == keys
    assert not any("generated" in line or "wrote" in line for line in lines)
    assert any("IN TXT" in line for line in lines)


def test_no_signing_domain_means_no_key(tmp_path: Path) -> None:
    lines = prepare(load_config(config_for(tmp_path, domain="")))
    assert not (tmp_path / "dkim").exists()
    assert lines == [f"signer: wrote a new HMAC secret to {tmp_path / 'verp.key'}"]


def test_selector_is_named_by_month() -> None:
    assert default_selector(AT) == "s202611"

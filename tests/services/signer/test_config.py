"""The [signer] section: defaults, bounds, strictness, the secret file, key checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.signer.config import SignerConfig, load_signer_config
from services.signer.keys import generate_private_key
from services.signer.main import STAGE, check_config
from shared.config import load_config
from shared.errors import ConfigError
from shared.secretfile import read_secret


def config_with(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "postline.toml"
    path.write_text("[signer]\n" + body)
    return path


def test_defaults() -> None:
    config = SignerConfig()
    assert config.max_message_age == 3 * 86400
    assert config.signature_expiry == 0
    assert config.verp and not config.allow_unsigned
    assert config.mailto_domain == config.bounce_domain


def test_durations_and_rules_decode(tmp_path: Path) -> None:
    path = config_with(
        tmp_path,
        (
            'max_message_age = "5d"\nsignature_expiry = "7d"\n'
            '[[signer.bulk_rules]]\ntag = "category"\nvalue = "news"\n'
        ),
    )
    config = load_signer_config(load_config(path, environ={}))
    assert config.max_message_age == 5 * 86400
    assert config.signature_expiry == 7 * 86400
    assert config.bulk_rules[0].tag == "category"


@pytest.mark.parametrize(
    ("body", "key", "problem"),
    [
        ("unknown = 1\n", "signer.unknown", "unknown key"),
        ('max_message_age = "10s"\n', "signer", "max_message_age must be between"),
        ("workers = -1\n", "signer.workers", ">= 0"),
        ('bounce_domain = "a@b"\n', "signer", "bounce_domain"),
        ('unsubscribe_url = "http://x/"\n', "signer", "https"),
        ('[[signer.bulk_rules]]\nvalue = "x"\n', "signer.bulk_rules", "at least one"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, body: str, key: str, problem: str) -> None:
    path = config_with(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_signer_config(load_config(path, environ={}))
    assert str(path) in str(info.value)
    assert info.value.key.startswith(key)
    assert problem in str(info.value)


def test_environment_overrides(tmp_path: Path) -> None:
    env = {"POSTLINE__SIGNER__VERP": "false", "POSTLINE__SIGNER__WORKERS": "3"}
    config = load_signer_config(load_config(None, environ=env))
    assert not config.verp and config.workers == 3


def test_secret_file(tmp_path: Path) -> None:
    (tmp_path / "short").write_bytes(b"short\n")
    (tmp_path / "good").write_bytes(b"a-long-enough-secret-value\n")
    assert (
        read_secret(tmp_path / "good", "signer.secret_file", "t.toml")
        == b"a-long-enough-secret-value"
    )
    with pytest.raises(ConfigError, match="shorter than 16"):
        read_secret(tmp_path / "short", "signer.secret_file", "t.toml")
    with pytest.raises(ConfigError, match=r"signer\.secret_file"):
        read_secret(tmp_path / "absent", "signer.secret_file", "t.toml")


def test_config_check_loads_keys(tmp_path: Path, keys_dir: Path) -> None:
    path = config_with(tmp_path, f'keys_dir = "{keys_dir}"\n')
    assert STAGE.check_config is check_config
    assert check_config(load_config(path, environ={})).keys_dir == keys_dir
    (keys_dir / "x._domainkey.example.test.rsa.pem").write_bytes(generate_private_key("ed25519"))
    with pytest.raises(ConfigError, match="not an RSA key"):
        check_config(load_config(path, environ={}))


def test_tracking_defaults_off_and_decodes(tmp_path: Path) -> None:
    assert not SignerConfig().tracking.opens and not SignerConfig().tracking.clicks
    path = config_with(
        tmp_path,
        '[signer.tracking]\nhost = "t.example.com"\nopens = true\nclicks = true\n'
        'text_clicks = true\nmax_size = "2MiB"\n',
    )
    tracking = load_signer_config(load_config(path, environ={})).tracking
    assert (tracking.host, tracking.opens, tracking.clicks, tracking.text_clicks) == (
        "t.example.com",
        True,
        True,
        True,
    )
    assert tracking.max_size == 2 * 1024**2


@pytest.mark.parametrize(
    ("body", "key", "problem"),
    [
        ('[signer.tracking]\nhost = "https://t.example.com/"\n', "signer.tracking.host", "host"),
        ('[signer.tracking]\nhost = "t.example.com\\"><b>"\n', "signer.tracking.host", "host"),
        ('[signer.tracking]\nmax_size = "100"\n', "signer.tracking.max_size", "between"),
        ('[signer.tracking]\nmax_size = "2GiB"\n', "signer.tracking.max_size", "between"),
        ("[signer.tracking]\nopens = 3\n", "signer.tracking.opens", "bool"),
        ("[signer.tracking]\npixel = true\n", "signer.tracking.pixel", "unknown key"),
    ],
)
def test_tracking_errors_name_the_key(tmp_path: Path, body: str, key: str, problem: str) -> None:
    path = config_with(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_signer_config(load_config(path, environ={}))
    assert str(path) in str(info.value)
    assert info.value.key == key
    assert problem in str(info.value)

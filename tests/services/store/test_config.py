"""``[store]``: defaults, bounds, where the database is, Kafka without a URL refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.store.config import StoreConfig, database_url, load
from services.store.main import STAGE
from shared.config import load_config
from shared.errors import ConfigError


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "postline.toml"
    path.write_text(f'[runtime]\ndata_dir = "{tmp_path}"\n{text}')
    return path


def test_defaults_on_the_embedded_bus(tmp_path: Path) -> None:
    config = load_config(config_file(tmp_path, ""), environ={})
    assert load(config) == StoreConfig()
    assert database_url(config) == f"sqlite://{(tmp_path / 'store.sqlite3').resolve()}"


def test_url_file_wins(tmp_path: Path) -> None:
    secret = tmp_path / "dsn"
    secret.write_text("postgresql://postline@db.internal:5432/postline\n")
    secret.chmod(0o600)
    text = f'[store]\nurl = "sqlite:///x"\nurl_file = "{secret}"\n'
    config = load_config(config_file(tmp_path, text), environ={})
    assert database_url(config) == "postgresql://postline@db.internal:5432/postline"


def test_kafka_without_a_url_names_the_key_and_the_file(tmp_path: Path) -> None:
    path = config_file(tmp_path, '[bus]\nkind = "kafka"\n')
    config = load_config(path, environ={})
    with pytest.raises(ConfigError) as caught:
        assert STAGE.check_config is not None
        STAGE.check_config(config)
    assert caught.value.key == "store.url" and str(path) in str(caught.value)
    disabled = load_config(
        config_file(tmp_path, '[bus]\nkind = "kafka"\n[store]\nenabled = false\n'), environ={}
    )
    assert STAGE.check_config(disabled) == StoreConfig(enabled=False)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("batch = 0", "store.batch"),
        ("retention_days = 0", "store.retention_days"),
        ("unknown = 1", "store.unknown"),
        ('retention_interval = "2d"', "store"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    config = load_config(config_file(tmp_path, f"[store]\n{text}\n"), environ={})
    with pytest.raises(ConfigError) as caught:
        load(config)
    assert caught.value.key.startswith(key)

"""``[bouncer.tlsrpt]``: defaults off, and a bad value fails naming its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.bouncer.config import load_bouncer_config
from shared.config import load_config
from shared.errors import ConfigError


def section(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "postline.toml"
    path.write_text(f"[bouncer.tlsrpt]\n{body}\n")
    return path


def test_off_by_default(tmp_path: Path) -> None:
    config = load_bouncer_config(load_config(section(tmp_path, ""), environ={}))
    assert not config.tlsrpt.enabled


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('from_address = "no-at-sign"', "bouncer.tlsrpt.from_address"),
        ('submitter = "a!b"', "bouncer.tlsrpt.submitter"),
        ('send_delay = "2d"', "bouncer.tlsrpt.send_delay"),
        ("check_interval = 0", "bouncer.tlsrpt.check_interval"),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, body: str, key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_bouncer_config(load_config(section(tmp_path, body), environ={}))
    assert raised.value.key == key

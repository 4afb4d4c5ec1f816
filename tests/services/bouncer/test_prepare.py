"""The bouncer's ``postline run`` preparation: the shared secret and its intake line."""

from __future__ import annotations

from pathlib import Path

from services.bouncer.prepare import prepare
from shared.config import load_config


def test_creates_the_secret_once_and_names_the_intake(tmp_path: Path) -> None:
    path = tmp_path / "postline.toml"
    path.write_text(
        f'[bouncer]\nsecret_file = "{tmp_path / "verp.key"}"\nlisten_port = 2527\n'
        'bounce_domain = "bounces.postline.localhost"\n'
    )
    first = prepare(load_config(path))
    secret = (tmp_path / "verp.key").read_bytes()
    second = prepare(load_config(path))
    assert (tmp_path / "verp.key").read_bytes() == secret
    assert first[0].startswith("bouncer: wrote a new HMAC secret")
    assert second == [
        "bounces, DSNs and complaints for bounces.postline.localhost: SMTP 127.0.0.1:2527"
    ]

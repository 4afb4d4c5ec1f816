"""The ``[ingest]`` section: defaults, strictness, bounds and cross-field checks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from services.ingest.config import load
from services.ingest.main import STAGE
from services.ingest.tls import TlsFiles
from shared.config import Config, CoreConfig, convert
from shared.errors import ConfigError
from tests.services.ingest.conftest import base_config
from tests.services.ingest.pki import make_pki


def config(**ingest: Any) -> Config:
    return Config(convert({"ingest": ingest}, CoreConfig, "p.toml"), "p.toml", {})


def test_defaults_need_tls_and_users() -> None:
    with pytest.raises(ConfigError, match=r"p\.toml: ingest\.tls: cert and key are required"):
        load(config())
    ok = load(config(tls={"cert": "c.pem", "key": "k.pem"}, users_file="u.json"))
    assert ok.listeners[0].port == 587 and ok.limits.max_message_size == 25 * 1024**2
    assert ok.suppression == "refuse" and ok.smuggling == "refuse"
    assert "exe" in ok.content.blocked_extensions and "zip" not in ok.content.blocked_extensions
    assert ok.content.max_attachment_size == 0 and ok.content.signed_changes == "refuse"


def test_relay_only_needs_neither() -> None:
    relay = load(
        config(
            listeners=[{"name": "mx", "port": 25, "mode": "relay"}],
            trusted_networks=["10.0.0.0/8", "2001:db8::/32"],
        )
    )
    assert [str(n) for n in relay.networks()] == ["10.0.0.0/8", "2001:db8::/32"]


@pytest.mark.parametrize(
    ("ingest", "key"),
    [
        ({"listeners": [{"name": "x", "mode": "smtp"}]}, "ingest.listeners[0].mode"),
        ({"listeners": [{"name": "x", "port": 70000}]}, "ingest.listeners[0].port"),
        ({"listeners": []}, "ingest.listeners"),
        ({"bogus": 1}, "ingest.bogus"),
        ({"limits": {"max_recipients": 0}}, "ingest.limits.max_recipients"),
        ({"limits": {"max_message_size": "12B"}}, "ingest.limits.max_message_size"),
        ({"limits": {"command_timeout": "2h"}}, "ingest.limits.command_timeout"),
        ({"trusted_networks": ["10.0.0.300/8"]}, "ingest.trusted_networks[0]"),
        ({"suppression": "bounce"}, "ingest.suppression"),
        (
            {"content": {"blocked_extensions": ["exe", ".EXE"]}},
            "ingest.content.blocked_extensions[1]",
        ),
        ({"content": {"max_attachment_size": "100B"}}, "ingest.content.max_attachment_size"),
        ({"content": {"max_archive_entries": 0}}, "ingest.content.max_archive_entries"),
        ({"content": {"signed_changes": "sign"}}, "ingest.content.signed_changes"),
        ({"content": {"scan": True}}, "ingest.content.scan"),
        (
            {"listeners": [{"name": "a", "mode": "relay"}, {"name": "a", "mode": "relay"}]},
            "ingest.listeners[1].name",
        ),
    ],
)
def test_errors_name_the_key(ingest: dict[str, Any], key: str) -> None:
    base: dict[str, Any] = {"listeners": [{"name": "mx", "mode": "relay"}]}
    base.update(ingest)
    with pytest.raises(ConfigError) as info:
        load(config(**base))
    assert info.value.key == key and info.value.source == "p.toml"


async def test_missing_certificate_is_a_clear_startup_error(tmp_path: Path) -> None:
    raw = base_config(tmp_path, make_pki(tmp_path))
    raw["ingest"]["tls"]["cert"] = str(tmp_path / "nope.pem")
    cfg = Config(convert(raw, CoreConfig, "p.toml"), "p.toml", {})
    assert STAGE.check_config is not None
    with pytest.raises(ConfigError, match=r"ingest\.tls\.cert: .*nope\.pem: no such file"):
        STAGE.check_config(cfg)  # ``postline config check`` loads the files too
    with pytest.raises(ConfigError, match=r"ingest\.tls\.cert: .*nope\.pem: no such file"):
        TlsFiles(load(cfg).tls, "p.toml", logging.getLogger("t"))

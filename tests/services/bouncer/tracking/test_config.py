"""[bouncer.tracking]: defaults, and every bad value refused naming its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.bouncer.config import BouncerConfig, load_bouncer_config
from shared.config import load_config
from shared.errors import ConfigError


def load(tmp_path: Path, body: str) -> BouncerConfig:
    path = tmp_path / "postline.toml"
    path.write_text("[bouncer.tracking]\n" + body)
    return load_bouncer_config(load_config(path, environ={}))


def test_defaults(tmp_path: Path) -> None:
    config = load_bouncer_config(load_config(None, environ={}))
    tracking = config.tracking
    assert (tracking.open_path, tracking.click_path) == ("/o/", "/c/")
    assert tracking.trusted_proxies == []  # X-Forwarded-For believed from nobody
    assert tracking.apple_networks == ["17.0.0.0/8"]
    assert (float(tracking.early_click), tracking.burst_links) == (10.0, 3)
    assert float(tracking.burst_window) == 2.0


@pytest.mark.parametrize(
    ("body", "key", "problem"),
    [
        ('trusted_proxies = ["10.0.0.0/8", "nonsense"]', "bouncer.tracking.trusted_proxies[1]", ""),
        ('apple_networks = ["17.0.0.0/33"]', "bouncer.tracking.apple_networks[0]", ""),
        ('open_path = "o/"', "bouncer.tracking.open_path", "'/'"),
        ('click_path = "/c"', "bouncer.tracking.click_path", "'/'"),
        ('click_path = "/o/"', "bouncer.tracking.click_path", "differ"),
        ('open_path = "/unsubscribe/"', "bouncer.tracking.open_path", "unsubscribe"),
        ('early_click = "2h"', "bouncer.tracking.early_click", "between"),
        ('burst_window = "5m"', "bouncer.tracking.burst_window", "between"),
        ("burst_links = 1", "bouncer.tracking.burst_links", ">= 2"),
        ("max_pending = 0", "bouncer.tracking.max_pending", ">= 1"),
        ("pixel = true", "bouncer.tracking.pixel", "unknown key"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, body: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, body + "\n")
    assert caught.value.key == key
    assert problem in caught.value.problem


def test_custom_values(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        'open_path = "/t/open/"\nclick_path = "/t/click/"\ntrusted_proxies = ["10.0.0.0/8"]\n'
        'early_click = "0s"\nburst_window = "0s"\n',
    )
    assert config.tracking.networks("trusted_proxies")[0].num_addresses == 2**24
    assert (config.tracking.open_path, float(config.tracking.burst_window)) == ("/t/open/", 0.0)

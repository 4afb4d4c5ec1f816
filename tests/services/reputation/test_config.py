"""``[reputation]``: defaults, bounds, the rule table it shares with the bouncer."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.reputation.config import load_reputation_config
from shared.config import load_config
from shared.errors import ConfigError


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "postline.toml"
    path.write_text(text)
    return path


def test_defaults(tmp_path: Path) -> None:
    section = load_reputation_config(load_config(config(tmp_path, ""), environ={}))
    assert section.window_hours == 24 and section.min_messages == 200
    assert section.rule_table_path({}) is None
    assert section.credentials.enabled and section.credentials.bucket == 3600
    assert section.credentials.volume_factor == 10 and section.credentials.min_messages == 50


def test_the_bouncers_rule_table_unless_its_own(tmp_path: Path) -> None:
    text = '[bouncer]\nrules_file = "b.toml"\n[reputation]\nwindow = "48h"\n'
    loaded = load_config(config(tmp_path, text), environ={})
    section = load_reputation_config(loaded)
    assert section.window_hours == 48
    assert section.rule_table_path(loaded.core.bouncer) == Path("b.toml")


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('window = "90m"', "reputation", "whole hours"),
        ("min_messages = 0", "reputation.min_messages", ">= 1"),
        ("bounce_pause = 0", "reputation.bounce_pause", "> 0.0"),
        ("bounce_warning = 0.2", "reputation", "bounce_warning must not be above bounce_pause"),
        ("colour = 1", "reputation.colour", "unknown key"),
        ("credentials.volume_factor = 1", "reputation.credentials.volume_factor", ">= 1.5"),
        ("credentials.min_messages = 0", "reputation.credentials.min_messages", ">= 1"),
        ("credentials.spam_share = 1.5", "reputation.credentials.spam_share", "<= 1.0"),
        ("credentials.baseline_buckets = 0", "reputation.credentials.baseline_buckets", ">= 1"),
        ('credentials.bucket = "90s"', "reputation.credentials", "whole minutes"),
        ("credentials.colour = 1", "reputation.credentials.colour", "unknown key"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, key: str, problem: str) -> None:
    loaded = load_config(config(tmp_path, f"[reputation]\n{text}\n"), environ={})
    with pytest.raises(ConfigError) as err:
        load_reputation_config(loaded)
    assert err.value.key == key and problem in str(err.value)

"""The [deliverer] section: strict decoding, policy resolution, cross-checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.deliverer.config import load, split_hostport
from shared.config import load_config
from shared.errors import ConfigError


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "postline.toml"
    path.write_text(body)
    return path


def test_defaults_follow_rfc_5321_timeouts(tmp_path: Path) -> None:
    cfg = load(load_config(_config(tmp_path, "")))
    assert cfg.smtp_port == 25
    assert cfg.timeouts.data_done == 600 and cfg.timeouts.data_init == 120
    assert cfg.retry.max_age == 3 * 86400
    assert cfg.defaults.tls == "opportunistic"


def test_policy_merges_provider_then_domain(tmp_path: Path) -> None:
    cfg = load(
        load_config(
            _config(
                tmp_path,
                """
[deliverer.defaults]
max_connections = 5
[deliverer.providers.google]
max_connections = 2
messages_per_minute = 60
[deliverer.domains."bank.test"]
tls = "required"
max_connections = 1
""",
            )
        )
    )
    google = cfg.policy_for("gmail.test", "google")
    assert (google.max_connections, google.messages_per_minute, google.tls) == (
        2,
        60,
        "opportunistic",
    )
    bank = cfg.policy_for("BANK.test", "google")
    assert (bank.max_connections, bank.messages_per_minute, bank.tls) == (1, 60, "required")
    assert cfg.policy_for("other.test", "other").max_connections == 5


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("[deliverer]\nbogus = 1", "deliverer.bogus"),
        ("[deliverer.defaults]\nmax_connections = 0", "deliverer.defaults.max_connections"),
        ('[deliverer.defaults]\ntls = "sometimes"', "deliverer.defaults.tls"),
        ('[deliverer.throttling]\npatterns = ["(unclosed"]', "deliverer.throttling.patterns[0]"),
        ('[deliverer.retry]\ntiers = ["soon"]', "deliverer.retry.tiers[0]"),
        ('[deliverer]\nnameservers = ["1.2.3.4:x"]', "deliverer.nameservers[0]"),
        (
            '[deliverer.domains."a.test"]\nsource_pool = "nope"',
            "deliverer.domains.a.test.source_pool",
        ),
        # DANE trusts the AD bit: only from resolvers on loopback, and never resolv.conf's.
        ("[deliverer.dane]\nenabled = true", "deliverer.dane.enabled"),
        (
            '[deliverer]\nnameservers = ["127.0.0.1:5353", "9.9.9.9"]\n'
            "[deliverer.dane]\nenabled = true",
            "deliverer.nameservers[1]",
        ),
    ],
)
def test_errors_name_the_key(tmp_path: Path, body: str, key: str) -> None:
    path = _config(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load(load_config(path))
    assert info.value.key == key
    assert str(path) in str(info.value)


def test_dane_with_loopback_resolvers(tmp_path: Path) -> None:
    body = (
        '[deliverer]\nnameservers = ["127.0.0.1:5353", "[::1]:53"]\n'
        "[deliverer.dane]\nenabled = true"
    )
    cfg = load(load_config(_config(tmp_path, body)))
    assert cfg.dane.enabled
    assert load(load_config(_config(tmp_path, ""))).dane.enabled is False


def test_routes(tmp_path: Path) -> None:
    cfg = load(
        load_config(
            _config(
                tmp_path,
                """
[[deliverer.routes]]
domains = ["special.test"]
host = "relay1.test:2525"
[[deliverer.routes]]
domains = ["*"]
host = "relay2.test"
tls = "implicit"
""",
            )
        )
    )
    assert cfg.route_for("SPECIAL.test").host == "relay1.test:2525"  # type: ignore[union-attr]
    assert cfg.route_for("x.test").host == "relay2.test"  # type: ignore[union-attr]


def test_split_hostport() -> None:
    assert split_hostport("127.0.0.1:5353", 53) == ("127.0.0.1", 5353)
    assert split_hostport("127.0.0.1", 53) == ("127.0.0.1", 53)
    assert split_hostport("[::1]:25", 53) == ("::1", 25)
    assert split_hostport("::1", 53) == ("::1", 53)


def test_mta_sts_section(tmp_path: Path) -> None:
    defaults = load(load_config(_config(tmp_path, ""))).mta_sts
    assert defaults.enabled and defaults.ca_file is None and defaults.https_port == 443
    assert defaults.max_policy_bytes == 65536
    cfg = load(
        load_config(
            _config(
                tmp_path,
                """
[deliverer.mta_sts]
enabled = false
ca_file = "/etc/postline/lab-ca.pem"
https_port = 8443
connect_timeout = "2s"
fetch_timeout = "20s"
max_policy_bytes = 4096
refresh_before = "1d"
txt_cache = "5m"
""",
            )
        )
    ).mta_sts
    assert not cfg.enabled and cfg.ca_file == Path("/etc/postline/lab-ca.pem")
    assert (cfg.https_port, cfg.connect_timeout, cfg.fetch_timeout) == (8443, 2, 20)
    assert (cfg.max_policy_bytes, cfg.refresh_before, cfg.txt_cache) == (4096, 86400, 300)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('fetch_timeout = "0s"', "deliverer.mta_sts.fetch_timeout"),
        ('connect_timeout = "0s"', "deliverer.mta_sts.connect_timeout"),
        ("max_policy_bytes = 100", "max_policy_bytes"),
        ("https_port = 0", "https_port"),
        ("unknown = 1", "unknown"),
    ],
)
def test_mta_sts_bad_values(tmp_path: Path, line: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load(load_config(_config(tmp_path, f"[deliverer.mta_sts]\n{line}\n")))

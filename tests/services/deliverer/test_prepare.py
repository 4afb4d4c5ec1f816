"""The deliverer's banner lines for ``postline run``: MX delivery or the smarthost."""

from __future__ import annotations

from services.deliverer.prepare import prepare
from shared.cli.run import deliver_to_environment
from shared.config import load_config


def test_without_routes_mail_goes_to_mx_hosts() -> None:
    (line,) = prepare(load_config(None, {}))
    assert "to the recipients' MX hosts on port 25" in line and "--deliver-to" in line


def test_deliver_to_names_the_smarthost() -> None:
    config = load_config(None, deliver_to_environment("127.0.0.1:2526", {}))
    assert prepare(config) == ["delivery: mail for * goes to smarthost 127.0.0.1:2526"]

"""``open_bus`` picks the adapter and its identity from the config (no broker needed)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from shared.bus.embedded import EmbeddedBus
from shared.bus.factory import open_bus
from shared.bus.kafka import KafkaBus
from shared.config import load_config
from shared.errors import ConfigError


def test_embedded_is_the_default(tmp_path: Path) -> None:
    config = load_config(None, {"POSTLINE__EMBEDDED__PATH": str(tmp_path / "bus.db")})

    assert isinstance(open_bus(config), EmbeddedBus)


def test_kafka_uses_the_configured_instance() -> None:
    config = load_config(
        None,
        {
            "POSTLINE__BUS__KIND": "kafka",
            "POSTLINE__KAFKA__BOOTSTRAP": "127.0.0.1:1",
            "POSTLINE__RUNTIME__INSTANCE": "ingest-7",
        },
    )

    bus = open_bus(config)

    assert isinstance(bus, KafkaBus)
    assert bus.instance == "ingest-7"
    assert bus.config.bootstrap == "127.0.0.1:1"


def test_kafka_instance_defaults_to_the_hostname() -> None:
    config = load_config(None, {"POSTLINE__BUS__KIND": "kafka"})

    bus = open_bus(config)

    assert isinstance(bus, KafkaBus)
    assert bus.instance == socket.gethostname()


@pytest.mark.parametrize(
    ("env", "static"),
    [
        ({"POSTLINE__RUNTIME__INSTANCE": "signer-0"}, True),  # a stable pod name: "auto" is on
        ({}, False),  # the host name may be a Deployment's random pod name
        ({"POSTLINE__KAFKA__STATIC_MEMBERSHIP": '"on"'}, True),
        (
            {
                "POSTLINE__RUNTIME__INSTANCE": "signer-0",
                "POSTLINE__KAFKA__STATIC_MEMBERSHIP": '"off"',
            },
            False,
        ),
    ],
)
def test_static_membership_follows_a_configured_instance_name(
    env: dict[str, str], static: bool
) -> None:
    config = load_config(None, {"POSTLINE__BUS__KIND": "kafka", **env})

    bus = open_bus(config)

    assert isinstance(bus, KafkaBus)
    assert bus.static_members is static


def test_a_session_timeout_the_broker_refuses_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="session_timeout"):
        load_config(None, {"POSTLINE__KAFKA__SESSION_TIMEOUT": '"2s"'})

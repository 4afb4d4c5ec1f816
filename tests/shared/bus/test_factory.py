"""``open_bus`` picks the adapter and its identity from the config (no broker needed)."""

from __future__ import annotations

import socket
from pathlib import Path

from shared.bus.embedded import EmbeddedBus
from shared.bus.factory import open_bus
from shared.bus.kafka import KafkaBus
from shared.config import load_config


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

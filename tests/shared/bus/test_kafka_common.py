"""Kafka client settings and error mapping (pure: no broker)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from aiokafka import errors as kafka_errors

from shared.bus.base import TopicPartition
from shared.bus.kafka_common import (
    MAX_FETCH_BYTES,
    MAX_PARTITION_FETCH_BYTES,
    MAX_REQUEST_BYTES,
    WireNames,
    client_kwargs,
    compression,
    map_error,
)
from shared.config import Duration, KafkaConfig
from shared.errors import BusUnavailable, ConfigError, RecordTooLarge
from shared.wire.topics import MAX_RECORD_BYTES


def test_plaintext_settings() -> None:
    config = KafkaConfig(bootstrap="a:9092,b:9092", client_id="pl", request_timeout=Duration(5))

    kwargs = client_kwargs(config)

    assert kwargs == {
        "bootstrap_servers": ["a:9092", "b:9092"],
        "client_id": "pl",
        "request_timeout_ms": 5000,
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_ssl_reads_the_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    config = KafkaConfig(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="postline",
        sasl_password_file=secret,
    )

    kwargs = client_kwargs(config)

    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "postline"
    assert kwargs["sasl_plain_password"] == "s3cret"


def test_sasl_without_a_readable_password_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sasl_password_file"):
        client_kwargs(KafkaConfig(security_protocol="SASL_PLAINTEXT"))
    missing = KafkaConfig(security_protocol="SASL_PLAINTEXT", sasl_password_file=tmp_path / "no")
    with pytest.raises(ConfigError, match="cannot read"):
        client_kwargs(missing)


def test_errors_map_to_the_bus_tree() -> None:
    assert isinstance(map_error(kafka_errors.MessageSizeTooLargeError(), "x"), RecordTooLarge)
    assert isinstance(map_error(kafka_errors.KafkaConnectionError(), "x"), BusUnavailable)
    assert isinstance(map_error(kafka_errors.KafkaTimeoutError(), "x"), BusUnavailable)
    assert isinstance(map_error(TimeoutError(), "x"), BusUnavailable)
    assert isinstance(map_error(kafka_errors.ProducerFenced(), "x"), BusUnavailable)


def test_wire_names_add_and_strip_the_prefix() -> None:
    names = WireNames("staging.")

    assert names.wire("postline.events") == "staging.postline.events"
    assert names.logical("staging.postline.events") == "postline.events"
    assert names.group("signer") == "staging.signer"
    tp = TopicPartition("postline.events", 3)
    assert names.from_kafka(names.to_kafka(tp)) == tp


def test_sizes_fit_the_largest_record() -> None:
    assert MAX_REQUEST_BYTES > MAX_RECORD_BYTES
    assert MAX_PARTITION_FETCH_BYTES >= MAX_REQUEST_BYTES
    assert MAX_FETCH_BYTES >= MAX_PARTITION_FETCH_BYTES
    assert compression(KafkaConfig(compression="none")) is None
    assert compression(KafkaConfig(compression="gzip")) == "gzip"

"""What every Kafka client of the bus shares: connection settings, wire names, error mapping.

Owns: turning :class:`KafkaConfig` into aiokafka keyword arguments (bootstrap, client id,
timeouts, TLS and SASL), the topic-prefix translation between logical and wire names, the
size limits derived from ``MAX_RECORD_BYTES``, and mapping aiokafka exceptions to
:mod:`shared.errors`. It does not create clients; ``kafka``, ``kafka_consumer`` and
``kafka_admin`` do.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import errors as kafka_errors
from aiokafka.helpers import create_ssl_context
from aiokafka.structs import TopicPartition as KafkaTopicPartition

from shared.bus.base import TopicPartition
from shared.config import KafkaConfig
from shared.errors import BusError, BusUnavailable, ConfigError, RecordTooLarge
from shared.wire.topics import MAX_RECORD_BYTES, MiB

#: A producer request carries one record plus batch and request headers; 1 MiB of headroom
#: keeps a MAX_RECORD_BYTES record sendable whatever its key and framing.
MAX_REQUEST_BYTES = MAX_RECORD_BYTES + 1 * MiB

#: Consumers must fetch at least one whole record per partition, or a large mail stalls its
#: partition forever (Kafka returns an oversized first batch only up to these limits).
MAX_PARTITION_FETCH_BYTES = MAX_REQUEST_BYTES
MAX_FETCH_BYTES = 2 * MAX_REQUEST_BYTES

_TOO_LARGE = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordTooLargeError,
    kafka_errors.RecordListTooLargeError,
)
_UNAVAILABLE = (
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.RequestTimedOutError,
    kafka_errors.NodeNotReadyError,
    kafka_errors.NoBrokersAvailable,
    kafka_errors.KafkaUnavailableError,
    kafka_errors.LeaderNotAvailableError,
    kafka_errors.NotEnoughReplicasError,
    kafka_errors.NotEnoughReplicasAfterAppendError,
    kafka_errors.CoordinatorNotAvailableError,
    kafka_errors.UnknownTopicOrPartitionError,
    TimeoutError,
    asyncio.TimeoutError,
    OSError,
)


def map_error(exc: BaseException, what: str) -> BusError:
    """The :mod:`shared.errors` exception for an aiokafka (or socket) failure of ``what``.

    Too-large records are :class:`RecordTooLarge`; everything else means the bus could not
    do it now, so the caller retries later (:class:`BusUnavailable`): for ingest this is a
    451 4.3.0 and the client keeps the message.
    """
    if isinstance(exc, BusError):
        return exc
    if isinstance(exc, _TOO_LARGE):
        return RecordTooLarge(f"{what}: record too large for the broker: {exc}")
    if isinstance(exc, _UNAVAILABLE):
        return BusUnavailable(f"{what}: Kafka unavailable: {exc!r}")
    return BusUnavailable(f"{what}: Kafka error: {exc!r}")


class WireNames:
    """Translate logical topic names (``postline.outbound``) to wire names and back."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def wire(self, topic: str) -> str:
        """The topic's name on the broker."""
        return self.prefix + topic

    def logical(self, wire_topic: str) -> str:
        """The logical name of a wire topic (unchanged when it lacks the prefix)."""
        return wire_topic.removeprefix(self.prefix) if self.prefix else wire_topic

    def group(self, group: str) -> str:
        """The consumer group id on the broker; groups live in the same namespace as topics."""
        return self.prefix + group

    def to_kafka(self, tp: TopicPartition) -> Any:
        """An aiokafka TopicPartition on the wire topic."""
        return KafkaTopicPartition(self.wire(tp.topic), tp.partition)

    def from_kafka(self, tp: Any) -> TopicPartition:
        """Our TopicPartition (logical topic) for an aiokafka one."""
        return TopicPartition(self.logical(tp.topic), tp.partition)


def client_kwargs(config: KafkaConfig) -> dict[str, Any]:
    """Keyword arguments every aiokafka client takes: address, id, timeout and security."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": config.bootstrap.split(","),
        "client_id": config.client_id,
        "request_timeout_ms": int(config.request_timeout * 1000),
        "security_protocol": config.security_protocol,
    }
    if config.security_protocol in ("SSL", "SASL_SSL"):
        cafile = str(config.ssl_cafile) if config.ssl_cafile else None
        kwargs["ssl_context"] = create_ssl_context(cafile=cafile)
    if config.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        kwargs["sasl_mechanism"] = config.sasl_mechanism
        kwargs["sasl_plain_username"] = config.sasl_username
        kwargs["sasl_plain_password"] = _read_password(config)
    return kwargs


def _read_password(config: KafkaConfig) -> str:
    # The password lives in a file (a Kubernetes Secret volume), never in the config itself.
    if config.sasl_password_file is None:
        raise ConfigError("kafka", "kafka.sasl_password_file", "required for SASL")
    try:
        return config.sasl_password_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            str(config.sasl_password_file), "kafka.sasl_password_file", f"cannot read: {exc}"
        ) from exc


def retrieve_exception(future: asyncio.Future[Any]) -> None:
    """A done callback: mark a failure as seen, so that a future nobody awaits any more (a
    caller gone at its deadline) is not logged as "exception was never retrieved"."""
    if not future.cancelled():
        future.exception()


def compression(config: KafkaConfig) -> str | None:
    """The producer compression codec (``None`` for ``"none"``)."""
    return None if config.compression == "none" else config.compression

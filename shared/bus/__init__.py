"""The bus: one contract (``base``), two adapters (``kafka``, ``embedded``)."""

from shared.bus.base import Bus, BusMessage, Consumer, OutRecord, TopicPartition, Transaction

__all__ = ["Bus", "BusMessage", "Consumer", "OutRecord", "TopicPartition", "Transaction"]

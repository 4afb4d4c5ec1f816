"""An offset reset that fails for stale leadership must refresh the metadata (aiokafka 0.14).

A partition with no committed offset (a group that never committed it, a group-less reader
starting from the beginning) gets its first position from a ListOffsets request to the
partition's leader. When the leader the consumer has cached is no longer the leader (it
was paused or cut off, leadership moved, and the consumer did not notice), the broker
answers NOT_LEADER_OR_FOLLOWER. aiokafka's ``Fetcher._update_fetch_positions`` logs "Failed
fetch offsets from N" and tries again after the retry backoff, but never asks for new
metadata, unlike its fetch path and ``_retrieve_offsets``: it asks the same broker again
until the metadata ages out (``metadata_max_age_ms``, five minutes), and meanwhile fetches
nothing from that broker at all, so every partition the consumer believes that broker
leads stalls. The Java consumer had the same bug (KAFKA-9535: "update metadata upon
retrying partitions for ListOffset").

Found by the pause-broker scenario of ``tests/cluster``: after a SIGSTOP/SIGCONT of one
broker the deliverer delivered nothing from a third of its partitions for minutes.
:func:`refresh_metadata_on_failed_reset` wraps that one method of a started consumer: when
a reset attempt leaves partitions still waiting for a position, it forces a metadata
update, so the next attempt goes to the current leader.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)


def refresh_metadata_on_failed_reset(consumer: Any) -> None:
    """Install the fix on a started ``AIOKafkaConsumer`` (see the module docstring)."""
    fetcher = getattr(consumer, "_fetcher", None)
    client = getattr(consumer, "_client", None)
    update = getattr(fetcher, "_update_fetch_positions", None)
    if fetcher is None or client is None or update is None:
        raise RuntimeError("aiokafka's consumer internals changed: re-check kafka_reset.py")

    async def update_then_refresh(assignment: Any, node_id: int, tps: Sequence[Any]) -> Any:
        result = await update(assignment, node_id, tps)
        if _still_waiting(assignment, tps):
            log.info("offset reset on broker %s failed; refreshing metadata", node_id)
            client.force_metadata_update()
        return result

    fetcher._update_fetch_positions = update_then_refresh


def _still_waiting(assignment: Any, tps: Sequence[Any]) -> bool:
    if not getattr(assignment, "active", False):
        return False  # revoked meanwhile: the next assignment starts over
    for tp in tps:
        try:
            state = assignment.state_value(tp)
        except (KeyError, AssertionError):
            continue
        if state is not None and state.awaiting_reset:
            return True
    return False

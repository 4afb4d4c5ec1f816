"""Dead letters as a stage's consume loop writes them, for the dead-letter tools' tests."""

from __future__ import annotations

from shared.wire.records import DeadLetter
from shared.wire.topics import SUBMITTED


def dead_submission(
    value: bytes | None,
    reason: str,
    *,
    at: float = 1_790_000_000.0,
    partition: int = 0,
    offset: int = 3,
    key: bytes = b"k",
) -> DeadLetter:
    """A record of ``postline.submitted`` the signer gave up on, with ``reason``."""
    return DeadLetter(
        topic=SUBMITTED.name,
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        reason=reason,
        group="postline-signer",
        at=at,
    )

"""What a scanner's verdict means for a message, under the tenant's scanning mode.

A pure function of the verdict, the mode and the quarantine threshold, so every path is a
unit test. rspamd's actions, from mildest to harshest: ``no action``, ``greylist``,
``add header``, ``rewrite subject``, ``soft reject``, ``reject``.
"""

from __future__ import annotations

import enum

from services.ingest.scanning.rspamd import Verdict


class Outcome(enum.StrEnum):
    """What became of a scanned message (the ``scanned`` event's ``classification``)."""

    CLEAN = "clean"  # sent as it was
    TAGGED = "tagged"  # sent with the verdict's headers (or subject) added
    REJECTED = "rejected"  # refused with 550 5.7.1
    SOFT_REJECTED = "soft_rejected"  # refused with 451 4.7.1; the client tries again later
    QUARANTINED = "quarantined"  # held in postline.quarantine until an operator decides
    SKIPPED = "skipped"  # not scanned (over the scan size limit, or rspamd skipped it)
    UNAVAILABLE = "unavailable"  # no verdict: sent unscanned (fail-open) or deferred

    @property
    def refused(self) -> bool:
        """Whether the client is refused (the message is neither sent nor held)."""
        return self in (Outcome.REJECTED, Outcome.SOFT_REJECTED)


#: Actions that ask for the message to be marked (headers or subject).
_TAG_ACTIONS = frozenset({"add header", "rewrite subject"})
#: Actions that ask the client to come back later. Greylisting outbound mail protects no
#: one, but rspamd's soft reject (e.g. its outbound rate limits) means exactly that.
_DEFER_ACTIONS = frozenset({"soft reject", "greylist"})


def decide(verdict: Verdict, mode: str, quarantine_score: float) -> Outcome:
    """The outcome of ``verdict`` in ``mode`` (``tag`` or ``enforce``).

    ``enforce``: reject refuses, soft reject and greylist defer, a score at or above
    ``quarantine_score`` (when set) quarantines, add header and rewrite subject tag.
    ``tag``: nothing is refused or held; every action but "no action" tags, so the verdict
    is visible in the message and its event while the tenant's policy is being tried out.
    """
    action = verdict.action
    if verdict.skipped and action == "no action":
        # Skipped by its own settings or size limit. A skip with an action is a pre-result
        # (GTUBE, a rate limit, a settings rule): the action stands.
        return Outcome.SKIPPED
    if mode == "tag":
        return Outcome.CLEAN if action == "no action" else Outcome.TAGGED
    if action == "reject":
        return Outcome.REJECTED
    if action in _DEFER_ACTIONS:
        return Outcome.SOFT_REJECTED
    if quarantine_score > 0 and verdict.score >= quarantine_score:
        return Outcome.QUARANTINED
    if action in _TAG_ACTIONS:
        return Outcome.TAGGED
    return Outcome.CLEAN

"""Whether a click was a machine's by its timing: too soon after sending, or in a burst.

Security gateways follow every link of a message as it passes through, before the recipient
could have read it, often several links within a second. Two pure rules, times given by the
caller (no clock here):

- :func:`early_click`: a click sooner than ``early_click`` seconds after the signer wrote the
  token (``TrackingToken.sent_at``). Delivery comes after signing, so a click this soon after
  signing is at least as soon after delivery;
- :class:`ClickBursts`: ``links`` distinct links of one message and recipient clicked within
  ``window`` seconds. It remembers the clicks of the last two windows per (message id,
  recipient), at most ``2 * links`` each, in an LRU map bounded by ``capacity``, in this
  process only: with several bouncer replicas a burst the load balancer spreads over them is
  seen by each in part (fewer flags, never false ones).

The user agent's class (``agents.py``) is the other half of ``Event.machine``.
"""

from __future__ import annotations

from collections import OrderedDict

ClickKey = tuple[str, str]  # (message id, recipient)


def early_click(at: float, sent_at: float, min_delay: float) -> bool:
    """Whether a click at ``at`` came within ``min_delay`` seconds of ``sent_at`` (0: off).

    A click "before" the sending time (clocks of signer and bouncer hosts a little apart)
    counts as early too.
    """
    return min_delay > 0 and at - sent_at < min_delay


class ClickBursts:
    """Recent clicks per message and recipient, and whether one click is in a burst."""

    def __init__(self, links: int, window: float, capacity: int) -> None:
        if links < 2 or window < 0 or capacity < 1:
            raise ValueError("links >= 2, window >= 0 and capacity >= 1 required")
        self.links = links
        self.window = window
        self.capacity = capacity
        self._recent: OrderedDict[ClickKey, list[tuple[float, int]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._recent)

    @property
    def enabled(self) -> bool:
        """Whether bursts are looked for (a window of 0 turns it off)."""
        return self.window > 0

    def add(self, key: ClickKey, at: float, link: int) -> None:
        """Remember a click of ``link`` at ``at``; forget what no burst check needs."""
        if not self.enabled:
            return
        # A click is checked (in_burst) once its window has passed, against the clicks up
        # to one window before it: clicks older than two windows can no longer matter.
        horizon = at - 2 * self.window
        clicks = [c for c in self._recent.pop(key, ()) if c[0] >= horizon]
        clicks.append((at, link))
        # The latest 2 * links clicks hold any burst that ends in them (a scanner following
        # 500 links is seen from its first few).
        self._recent[key] = clicks[-2 * self.links :]  # most recently clicked last
        while self._recent and (
            len(self._recent) > self.capacity or next(iter(self._recent.values()))[-1][0] < horizon
        ):
            self._recent.popitem(last=False)  # least recently clicked first

    def in_burst(self, key: ClickKey, at: float) -> bool:
        """Whether the click at ``at`` lies in some ``window``-long span holding clicks of
        at least ``links`` distinct links. Exact once every click up to ``at + window`` was
        added (the caller holds a click that long before asking)."""
        clicks = sorted(self._recent.get(key, ()))
        # The best span can always be moved right until it starts at a click; so try the
        # spans starting at each click from at - window to at.
        for start, _ in clicks:
            if at - self.window <= start <= at:
                distinct = {link for t, link in clicks if start <= t <= start + self.window}
                if len(distinct) >= self.links:
                    return True
        return False

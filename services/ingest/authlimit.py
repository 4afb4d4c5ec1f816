"""AUTH failure throttling per client address and per credential (issue 11 item 8).

Three sliding windows of ``limits.auth_failure_window``, in memory, per process:

- per address (``limits.auth_failures``): an address with that many failures is refused at
  connect and at AUTH until the window ends (421), except addresses in
  ``ingest.trusted_networks``: one host runs many apps, and one app with a stale password
  must not lock out the others, nor the relay port that does not need AUTH at all;
- per (user, address) (``limits.auth_failures``): that user name is refused from that address,
  trusted or not, so guessing from one place stops whatever the address;
- per user (``limits.auth_failures_per_user``, across addresses): stops guessing one account
  from many addresses (250 guesses from 50 addresses in 11 s, issue 11). So that an attacker
  cannot lock the real user out this way, the lock does not apply to addresses from which
  that user authenticated successfully within :data:`KNOWN_GOOD` nor to trusted networks; and
  while it holds, no more failures are counted, so it ends one window after the last one.

The per-(user, address) pair is preferred over a pure per-user lock for exactly that reason.
This module is pure logic on a clock; ``server.py`` turns its answers into replies and
``policy/connect.py`` applies the address lock at connect.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from services.ingest.ratelimit import Clock, FailureLog

#: How long a successful AUTH makes its (user, address) pair exempt from the per-user lock.
KNOWN_GOOD = 7 * 86400.0
#: Most remembered (user, address) successes; the oldest are forgotten first.
MAX_KNOWN = 100_000


class AuthThrottle:
    """The three failure windows and the pairs known to be good."""

    def __init__(
        self, per_ip: int, per_user: int, window: float, clock: Clock = time.monotonic
    ) -> None:
        self._clock = clock
        self.ips = FailureLog(per_ip, window, clock)
        self.pairs = FailureLog(per_ip, window, clock)
        self.users = FailureLog(per_user, window, clock)
        self._known: OrderedDict[str, float] = OrderedDict()

    def ip_blocked(self, ip: str, trusted: bool) -> bool:
        """Whether connections from ``ip`` are refused (never for a trusted network)."""
        return not trusted and self.ips.blocked(ip)

    def blocked(self, ip: str, user: str, trusted: bool) -> str | None:
        """Why AUTH as ``user`` from ``ip`` is refused now (``"ip"``, ``"user_ip"``,
        ``"user"``), or ``None``."""
        if self.ip_blocked(ip, trusted):
            return "ip"
        if self.pairs.blocked(_pair(user, ip)):
            return "user_ip"
        if not trusted and not self._is_known(user, ip) and self.users.blocked(user):
            return "user"
        return None

    def failed(self, ip: str, user: str, trusted: bool) -> None:
        """Record a failed AUTH."""
        if not trusted:
            self.ips.fail(ip)
        self.pairs.fail(_pair(user, ip))
        self.users.fail(user)

    def succeeded(self, ip: str, user: str) -> None:
        """Record a successful AUTH: the pair is known good and its failures are forgotten."""
        key = _pair(user, ip)
        self.pairs.forget(key)
        self._known[key] = self._clock()
        self._known.move_to_end(key)
        while len(self._known) > MAX_KNOWN:
            self._known.popitem(last=False)

    def unblock(self, target: str) -> None:
        """Forget the failures of an address or a user name (``postline auth unblock``)."""
        self.ips.forget(target)
        self.users.forget(target)
        self.pairs.forget_where(lambda key: target in key.split("\0"))

    def _is_known(self, user: str, ip: str) -> bool:
        at = self._known.get(_pair(user, ip))
        return at is not None and self._clock() - at < KNOWN_GOOD


def _pair(user: str, ip: str) -> str:
    return f"{user}\0{ip}"

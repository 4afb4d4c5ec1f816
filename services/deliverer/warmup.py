"""How much a warming source address may still send today, as this deliverer sees it.

Owns: :class:`WarmupLedger`: the warm-up states the reputation stage publishes on the
compacted ``postline.reputation`` topic (scope ``address``, key
``shared.pools.warmup_key(address, provider)``; loaded at start, then followed), and this
process's own count of attempts per (address, provider) for the current UTC day. An address's
allowance left today is the state's allowance minus the larger of the two counts: the state's
``sent`` covers every replica but lags by the reputation stage's consume latency; our own count
is exact for this process and never lags (SparkPost and Mailgun cap a warming IP per day and
per mailbox provider in the same way).

A day the reputation stage has not rolled over yet (a state from an earlier day) keeps that
state's allowance with nothing sent: the stage judges the day before at the new day's first
event and publishes the next step within seconds, so holding the last allowance is the safe
guess in between (it neither jumps ahead nor stalls the address). No state at all: the
schedule's first step. A state whose health is ``warm`` (past the schedule) has no allowance.

Counts are recipients, like the reputation stage's counts (one event per recipient).
Does not choose an address (``sources.py``) and does not judge or advance warm-up (the
reputation stage does).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from shared.bus.base import Bus, BusMessage
from shared.bus.follow import follow_topic
from shared.errors import DecodeError
from shared.pools import WarmupConfig, warmup_key
from shared.reputation import DAY, SCOPE_ADDRESS, WARM, day_of
from shared.wire.records import WarmupState
from shared.wire.topics import REPUTATION


def next_midnight(at: float) -> float:
    """The start of the UTC day after ``at``: when a new day's allowance begins."""
    return float((day_of(at) + 1) * DAY)


@dataclass(frozen=True)
class Reservation:
    """Recipients counted against an address's allowance for one day (given back if the
    Delivery is shed before its attempt)."""

    address: str
    provider: str
    count: int
    day: int


@dataclass(frozen=True)
class Allowance:
    """One (address, provider) today: the allowance and what counts as sent against it."""

    allowance: int
    sent: int

    @property
    def left(self) -> int:
        """What may still be sent today (never negative)."""
        return max(0, self.allowance - self.sent)


class WarmupLedger:
    """Warm-up states from ``postline.reputation`` and this process's own counts."""

    def __init__(self, cfg: WarmupConfig, log: logging.Logger | None = None) -> None:
        self._cfg = cfg
        self._log = log or logging.getLogger("postline.deliverer.warmup")
        self._states: dict[str, WarmupState] = {}
        self._own: dict[tuple[str, str], tuple[int, int]] = {}  # -> (day, recipients)

    def state(self, address: str, provider: str) -> WarmupState | None:
        """The last published state of ``address`` with ``provider``."""
        return self._states.get(warmup_key(address, provider))

    def allowance(self, address: str, provider: str, now: float) -> Allowance | None:
        """Today's allowance of a warming ``address`` with ``provider``; ``None`` when it has
        warmed up (no limit). See the module docstring for days not rolled over yet."""
        today = day_of(now)
        state = self.state(address, provider)
        own = self.own(address, provider, today)
        if state is None:
            return Allowance(self._cfg.schedule[0], own)
        if state.health == WARM or state.step >= len(self._cfg.schedule):
            return None
        if state.day == today:
            return Allowance(state.allowance, max(state.sent, own))
        return Allowance(state.allowance or self._cfg.schedule[state.step], own)

    def own(self, address: str, provider: str, day: int) -> int:
        """Recipients this process counted for ``address`` and ``provider`` on ``day``."""
        counted_day, count = self._own.get((address, provider), (day, 0))
        return count if counted_day == day else 0

    def take(self, address: str, provider: str, count: int, now: float) -> Reservation:
        """Count ``count`` recipients against today's allowance (at admission, so a full
        window of Deliveries cannot all pass the check before the first is sent)."""
        day = day_of(now)
        self._own[(address, provider)] = (day, self.own(address, provider, day) + count)
        return Reservation(address, provider, count, day)

    def give_back(self, reservation: Reservation) -> None:
        """Undo :meth:`take` for a Delivery shed without an attempt (same day only)."""
        key = (reservation.address, reservation.provider)
        day, count = self._own.get(key, (reservation.day, 0))
        if day == reservation.day:
            self._own[key] = (day, max(0, count - reservation.count))

    def seen(self, now: float) -> Iterator[tuple[str, str]]:
        """Every (address, provider) with a state or a count today (for the gauges)."""
        today = day_of(now)
        keys = {_address_provider(key) for key in self._states}
        keys |= {key for key, (day, _) in self._own.items() if day == today}
        return iter(sorted(keys))

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one record of ``postline.reputation``: only address states are kept."""
        if key is None:
            return
        name = key.decode("utf-8", "replace")
        if not name.startswith(SCOPE_ADDRESS + "|"):
            return
        if value is None:
            self._states.pop(name, None)
            return
        try:
            record = REPUTATION.decode(value)
        except DecodeError as exc:
            self._log.warning(
                "undecodable reputation record kept as it was",
                extra={"key": name, "error": str(exc)},
            )
            return
        if record.scope != SCOPE_ADDRESS or record.warmup is None:
            return
        self._states[name] = record.warmup

    async def load(self, bus: Bus) -> None:
        """Read the topic's current state (before the first Delivery is admitted)."""
        for key, value in (await bus.read_table(REPUTATION.name)).items():
            self.apply(key, value)

    async def follow(self, bus: Bus, stopping: asyncio.Event, log: logging.Logger) -> None:
        """Apply every new record until ``stopping`` (from the beginning: records are
        states, replaying them is harmless)."""
        await follow_topic(bus, REPUTATION.name, self._apply_message, stopping, log)

    def _apply_message(self, message: BusMessage) -> None:
        self.apply(message.key, message.value)


def _address_provider(key: str) -> tuple[str, str]:
    """``address|<ip>|<provider>`` -> (ip, provider); an IPv6 address has no ``|``."""
    _, address, provider = key.split("|", 2)
    return address, provider

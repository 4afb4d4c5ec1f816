"""The operators' queue actions in force in this deliverer replica, and what they say about
one Delivery.

Owns :class:`QueueControl`: the queue actions of ``postline.control`` (``shared.queue.actions``
says what each means and how long it matters), read whole at start and then followed, so a
replica that starts honours a suspension still in force and a bounce, delete or flush still
relevant; a record seen again (the follower restarted after a bus failure) changes nothing,
so every action is applied once per replica. It answers, for one Delivery:

- :meth:`suspension`: held (shed to a tier without an attempt, as a paused sender's mail)?
- :meth:`purge`: to be ended by the operator (bounced with a DSN, or deleted)? A bounce or
  delete reaches what was submitted before it (a message target: that message whenever);
- :meth:`flushed`: to be released from its retry tier now? A flush reaches what was written
  to a tier before this replica read it;
- :meth:`sweeping`: must the retry loop read past a record not yet due, because a flush,
  bounce or delete may match records behind it in the partition? Only where such records
  can be: for an action naming its recipient domains (a message's, a domain's), the tier
  partitions of those keys, once :meth:`scope` has been told them; for a tenant, a provider
  or everything, every partition.

and tells its listeners (the engines: windows and throttles; the retry loop: held
partitions) about each new action. Does not act on Deliveries itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.bus.base import Bus, BusMessage, TopicPartition
from shared.bus.follow import follow_topic
from shared.errors import DecodeError, QueueInvalid
from shared.queue.actions import KINDS, QUEUE_VERBS, SWEEPS, active_until
from shared.queue.actions import key as action_key
from shared.queue.targets import (
    ALL,
    DOMAIN,
    MESSAGE,
    PROVIDER,
    SOURCE,
    TENANT,
    Target,
    parse_target,
)
from shared.wire.records import DEFAULT_TENANT, ControlAction, ControlVerb, Delivery
from shared.wire.topics import CONTROL

log = logging.getLogger("postline.deliverer.control")

Clock = Callable[[], float]
Listener = Callable[["Applied"], None]


@dataclass(frozen=True)
class Applied:
    """An action in force here: ``horizon`` is when this replica read it (a flush or purge
    sweeps the tier records written before then), ``until`` when it stops mattering."""

    action: ControlAction
    target: Target
    horizon: float
    until: float

    def submitted_before(self, delivery: Delivery) -> bool:
        """Whether a bounce or delete reaches ``delivery``: submitted before the action, or
        any Delivery of a named message."""
        if self.target.kind == MESSAGE:
            return True
        return 0 < delivery.submitted_at <= self.action.at


class QueueControl:
    """The queue actions in force (see the module docstring)."""

    def __init__(self, *, max_age: float, longest_wait: float, clock: Clock = time.time) -> None:
        """``max_age``: a message's maximum age (how long a bounce or delete matters);
        ``longest_wait``: the longest a record waits in a retry tier (how long a flush
        matters, and how long a sweep can find records written before it)."""
        self._max_age = max_age
        self._longest = longest_wait
        self._clock = clock
        self._by_key: dict[str, Applied] = {}
        self._by_verb: dict[ControlVerb, dict[Target, Applied]] = {v: {} for v in QUEUE_VERBS}
        self._listeners: list[Listener] = []
        #: The tier partitions a sweep of an action naming domains reads (None: every one).
        self._scopes: dict[str, frozenset[TopicPartition] | None] = {}

    def listen(self, listener: Listener) -> None:
        """Call ``listener`` with each new action (not with ones already seen)."""
        self._listeners.append(listener)

    async def load(self, bus: Bus) -> None:
        """Read the actions on ``postline.control`` now (before the first Delivery); a
        one-shot command already there is taken as done (it was for the replicas then)."""
        for key, value in (await bus.read_table(CONTROL.name)).items():
            self.apply(key, value, replayed=True)

    async def follow(self, bus: Bus, stopping: asyncio.Event, logger: logging.Logger) -> None:
        """Apply each action as it commits, until ``stopping`` (from the beginning: an
        action already seen is recognised and changes nothing)."""

        def on_message(message: BusMessage) -> None:
            if message.key is not None:
                self.apply(message.key, message.value)

        await follow_topic(bus, CONTROL.name, on_message, stopping, logger)

    def apply(self, key: bytes, value: bytes | None, *, replayed: bool = False) -> Applied | None:
        """One record of ``postline.control``; returns the action when it is new here and
        still matters (then the listeners have been told)."""
        name = key.decode("utf-8", "replace")
        if value is None:  # a resume (or the removal of another verb's record)
            self._remove(name)
            return None
        try:
            action = CONTROL.decode(value)
        except DecodeError as exc:  # a newer writer's verb: not ours to apply
            log.warning("control action ignored", extra={"key": name, "error": str(exc)})
            return None
        if action.verb not in QUEUE_VERBS:
            return None
        known = self._by_key.get(name)
        if known is not None and known.action == action:
            return None  # seen before: each action is applied once per replica
        try:
            target = parse_target(action.target, KINDS[action.verb])
        except QueueInvalid as exc:
            log.warning("control action ignored", extra={"key": name, "error": str(exc)})
            return None
        now = self._clock()
        until = active_until(action, max_age=self._max_age, longest_tier=self._longest)
        # Received live, an action reaches what was written before this replica read it
        # (the replicas' clocks differ a little); read at start, what was written before it
        # was published (mail deferred since is not its business).
        horizon = action.at if replayed else max(action.at, now)
        applied = Applied(action, target, horizon, until)
        self._remove(name)
        self._by_key[name] = applied  # one-shot commands too: to recognise them again
        self._by_verb[action.verb][target] = applied
        one_shot = action.verb is ControlVerb.THROTTLE_CANCEL
        if (one_shot and replayed) or (not one_shot and until <= now):
            return None
        log.info(
            "queue action",
            extra={"verb": str(action.verb), "target": action.target, "by": action.by},
        )
        for listener in self._listeners:
            listener(applied)
        return applied

    def _remove(self, key: str) -> None:
        gone = self._by_key.pop(key, None)
        self._scopes.pop(key, None)
        if gone is not None:
            self._by_verb[gone.action.verb].pop(gone.target, None)

    def scope(self, applied: Applied, partitions: frozenset[TopicPartition] | None) -> None:
        """Where the mail of ``applied`` (naming its domains) can be in the tiers: a sweep
        reads only those partitions (``None``: every one, when they could not be found)."""
        name = action_key(applied.action.verb, applied.target)
        if self._by_key.get(name) is applied:
            self._scopes[name] = partitions

    @staticmethod
    def needs_scope(applied: Applied) -> bool:
        """Whether a sweep for ``applied`` waits for :meth:`scope` (it names domains)."""
        return applied.action.verb in SWEEPS and bool(applied.action.domains)

    def prune(self) -> None:
        """Forget actions that no longer matter (called now and then)."""
        now = self._clock()
        for key, applied in list(self._by_key.items()):
            # One-shot commands stay known (a few keys): replayed, they must not act again.
            if applied.until <= now and applied.action.verb is not ControlVerb.THROTTLE_CANCEL:
                self._remove(key)

    def in_force(self, verb: ControlVerb) -> list[Applied]:
        """The actions of ``verb`` in force now."""
        now = self._clock()
        return [a for a in self._by_verb[verb].values() if a.until > now]

    # -- questions about one Delivery ----------------------------------------------------

    def suspension(
        self, delivery: Delivery, *, provider: str = "", source: str = ""
    ) -> Applied | None:
        """The suspension holding ``delivery`` (sent to ``provider`` from ``source``, ""
        when not known yet), if any; the one ending last when several do."""
        now = self._clock()
        found = [
            applied
            for target in (
                Target(DOMAIN, delivery.domain.lower().rstrip(".")),
                Target(TENANT, delivery.tenant or DEFAULT_TENANT),
                Target(PROVIDER, provider),
                Target(SOURCE, source),
            )
            if target.name
            and (applied := self._by_verb[ControlVerb.QUEUE_SUSPEND].get(target)) is not None
            and applied.until > now
        ]
        return max(found, key=lambda a: a.until) if found else None

    def purge(self, delivery: Delivery) -> Applied | None:
        """The bounce or delete that ends ``delivery``, if any (a bounce before a delete:
        the sender hears of it)."""
        now = self._clock()
        for verb in (ControlVerb.QUEUE_BOUNCE, ControlVerb.QUEUE_DELETE):
            actions = self._by_verb[verb]
            for target in self._targets(delivery, ""):
                applied = actions.get(target)
                if (
                    applied is not None
                    and applied.until > now
                    and applied.submitted_before(delivery)
                ):
                    return applied
        return None

    def flushed(self, delivery: Delivery, written: float, provider: str = "") -> bool:
        """Whether a flush releases ``delivery``, written to its tier at ``written``."""
        now = self._clock()
        actions = self._by_verb[ControlVerb.QUEUE_FLUSH]
        for target in self._targets(delivery, provider):
            applied = actions.get(target)
            if applied is not None and applied.until > now and written < applied.horizon:
                return True
        return False

    def sweeping(self, written: float, partition: TopicPartition) -> bool:
        """Whether a flush, bounce or delete may match records written at ``written`` or
        later in ``partition``: the retry loop then reads past a record not yet due."""
        now = self._clock()
        for verb in SWEEPS:
            for target, applied in self._by_verb[verb].items():
                if written >= applied.horizon or now >= applied.horizon + self._longest:
                    continue
                if not self.needs_scope(applied):
                    return True
                # Until its partitions are known, an action naming domains sweeps nothing.
                scope = self._scopes.get(action_key(verb, target), frozenset())
                if scope is None or partition in scope:
                    return True
        return False

    @staticmethod
    def _targets(delivery: Delivery, provider: str) -> list[Target]:
        targets = [
            Target(ALL),
            Target(MESSAGE, delivery.message_id),
            Target(DOMAIN, delivery.domain.lower().rstrip(".")),
            Target(TENANT, delivery.tenant or DEFAULT_TENANT),
        ]
        if provider:
            targets.append(Target(PROVIDER, provider))
        return targets

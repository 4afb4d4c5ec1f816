"""The arithmetic of one check, written once: :func:`plan` turns rules into per-key steps,
:func:`decide` applies GCRA and fixed windows to the stored values.

:class:`~shared.limits.local.LocalLimiter` runs :func:`decide` in Python; the Lua script in
:mod:`shared.limits.script` is the same function line for line, run inside Redis so that
reading, deciding and writing every key of a check is one atomic step. Times are
milliseconds (floats) in both, so the two agree to the millisecond.

GCRA (ITU-T I.371; Brandur Leach, "Rate limiting, cells and GCRA"): each key stores the
theoretical arrival time (TAT) of the next unit. A unit costs the emission interval
``T = period / limit``; a check of ``cost`` units fits when ``max(TAT, now) + cost * T``
is at most ``now + burst * T``. The key expires when its TAT passes, so idle keys vanish.

A quota stores how many units its current window has used, under a key naming the window's
start; the key expires a minute after the window ends (slack for clocks a little behind).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from shared.limits.rules import Rule, window_bounds

#: A quota key lives this long past its window's end, for replicas whose clock lags.
QUOTA_SLACK_MS = 60_000


@dataclass(frozen=True, slots=True)
class Step:
    """One rule of a check, ready to run against its stored value."""

    rule: Rule
    key: str  # where the rule's value is stored (shared by every replica)
    a: float  # rate: emission interval T in ms; quota: the limit
    b: float  # rate: burst tolerance (burst * T) in ms; quota: ms until the window ends
    ttl_ms: int  # quota: the key's lifetime from now; rate: 0 (the TTL follows the TAT)


@dataclass(frozen=True, slots=True)
class Decision:
    """What :func:`decide` found: ``refused`` is the index of the refusing step (-1: none)."""

    refused: int
    wait_ms: float
    values: list[float]  # every step's new value (written only when nothing refused)


def storage_key(prefix: str, key: str, rule: Rule, now: float) -> str:
    """The Redis (or local) key of ``rule`` for ``key``.

    ``{key}`` is a Redis Cluster hash tag: every key of one check lands in one slot, which a
    multi-key script needs. A quota's key names its window's start, so a new window starts
    from zero without anything resetting it.
    """
    if rule.kind == "rate":
        return f"{prefix}{{{key}}}:{rule.name}"
    start, _ = window_bounds(now, rule.window)
    return f"{prefix}{{{key}}}:{rule.name}:{int(start)}"


def plan(prefix: str, key: str, rules: Sequence[Rule], now: float) -> list[Step]:
    """The steps of a check at ``now`` (epoch seconds)."""
    steps = []
    now_ms = now * 1000.0
    for rule in rules:
        if rule.kind == "rate":
            interval = rule.period * 1000.0 / rule.limit
            steps.append(
                Step(rule, storage_key(prefix, key, rule, now), interval, interval * rule.burst, 0)
            )
        else:
            _, end = window_bounds(now, rule.window)
            left = end * 1000.0 - now_ms
            ttl = math.ceil(left) + QUOTA_SLACK_MS
            steps.append(Step(rule, storage_key(prefix, key, rule, now), rule.limit, left, ttl))
    return steps


def decide(
    stored: Sequence[float | None], steps: Sequence[Step], now_ms: float, cost: int
) -> Decision:
    """Apply every step to its stored value; refuse with the step that frees up last."""
    refused, worst = -1, -1.0
    values: list[float] = []
    for i, (value, step) in enumerate(zip(stored, steps, strict=True)):
        if step.rule.kind == "rate":
            tat = now_ms if value is None or value < now_ms else value
            new = tat + step.a * cost
            wait = new - step.b - now_ms
            over = wait > 0
        else:
            used = 0.0 if value is None else value
            new = used + cost
            wait = step.b
            over = new > step.a
        if over and wait > worst:
            refused, worst = i, wait
        values.append(new)
    return Decision(refused, max(worst, 0.0), values)


def ttl_ms(step: Step, value: float, now_ms: float) -> int:
    """How long a written value must live: a TAT until it passes, a count past its window."""
    if step.rule.kind == "rate":
        return max(1, math.ceil(value - now_ms))
    return step.ttl_ms

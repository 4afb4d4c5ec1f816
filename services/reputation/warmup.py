"""A warming source address's day with one provider: counting attempts, judging the day.

Providers judge a new IP by what it sends them day by day (Gmail's and Microsoft's
postmaster guides; SparkPost and Mailgun warm new IPs on a schedule): volume has to grow
while bounces, complaints and deferrals stay low. Each UTC day (of the event times) the
address may send its step's allowance (``[pools.warmup] schedule``); the first attempt of a
new day judges the day before:

- a bounce, complaint or deferral rate over its step-back level: one step back;
- the day used at least ``min_use`` of its allowance with every rate within its advance
  level: the next step (past the last step the address is warm: no allowance any more);
- otherwise it holds.

A day with no attempt is not judged (nothing was learned). ``changed_at`` is when the
address last advanced (or started), which ``stuck`` measures. Pure functions on frozen
states; counting which events are attempts is ``counting.py``'s, enforcing the allowance
the deliverer's.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from shared.pools import WarmupConfig
from shared.reputation import WARM
from shared.wire.records import WarmupState

ADVANCING = "advancing"
HOLDING = "holding"
STEPPING_BACK = "stepping_back"

#: Event classifications of the day's verdicts.
ADVANCED = "warmup_advanced"
HELD = "warmup_held"
STEPPED_BACK = "warmup_stepped_back"

#: What one event tells about an address's day.
DELIVERED = "delivered"
BOUNCED = "bounced"  # a hard bounce or a block: the provider's verdict on the mail or the IP
FAILED = "failed"  # another permanent failure (mailbox full, ...): an attempt, nothing more
DEFERRED = "deferred"
COMPLAINED = "complained"


def allowance(step: int, config: WarmupConfig) -> int:
    """What an address at ``step`` may send a provider in a day; 0 once warm (no limit)."""
    return config.schedule[step] if step < len(config.schedule) else 0


def begin(day: int, at: float, config: WarmupConfig) -> WarmupState:
    """A new warming address: step 0, today's allowance the schedule's first."""
    return WarmupState(
        step=0,
        day=day,
        allowance=allowance(0, config),
        started_day=day,
        health=ADVANCING,
        changed_at=at,
    )


def count(state: WarmupState, outcome: str) -> WarmupState:
    """``state`` with one more event of ``outcome`` on its day."""
    attempt = outcome in (DELIVERED, BOUNCED, FAILED, DEFERRED)
    return msgspec.structs.replace(
        state,
        sent=state.sent + attempt,
        bounced=state.bounced + (outcome == BOUNCED),
        deferred=state.deferred + (outcome == DEFERRED),
        complained=state.complained + (outcome == COMPLAINED),
    )


@dataclass(frozen=True)
class Judgement:
    """The verdict on a finished day: the classification and the figures behind it."""

    decision: str  # ADVANCED, HELD or STEPPED_BACK
    figures: dict[str, float]


def rates(state: WarmupState) -> tuple[float, float, float]:
    """The day's bounce, complaint and deferral rates (per attempt)."""
    if state.sent <= 0:
        return 0.0, 0.0, 0.0
    return state.bounced / state.sent, state.complained / state.sent, state.deferred / state.sent


def roll(
    state: WarmupState, day: int, at: float, config: WarmupConfig
) -> tuple[WarmupState, Judgement | None]:
    """Move ``state`` to ``day`` (a later day), judging the day it was on; a warm address
    only starts its new day's counts."""
    fresh = {"day": day, "sent": 0, "bounced": 0, "deferred": 0, "complained": 0}
    if state.health == WARM:
        return msgspec.structs.replace(state, **fresh), None
    bounce, complaint, deferral = rates(state)
    step, health, decision = state.step, HOLDING, HELD
    if (
        bounce > config.back_bounce_rate
        or complaint > config.back_complaint_rate
        or deferral > config.back_deferral_rate
    ):
        step, health, decision = max(0, state.step - 1), STEPPING_BACK, STEPPED_BACK
    elif (
        state.sent >= config.min_use * state.allowance
        and bounce <= config.advance_max_bounce_rate
        and complaint <= config.advance_max_complaint_rate
        and deferral <= config.advance_max_deferral_rate
    ):
        step, decision = state.step + 1, ADVANCED
        health = WARM if step >= len(config.schedule) else ADVANCING
    figures = {
        "day": float(state.day - state.started_day + 1),
        "sent": float(state.sent),
        "allowance": float(state.allowance),
        "bounce_rate": bounce,
        "complaint_rate": complaint,
        "deferral_rate": deferral,
        "step": float(step),
        "next_allowance": float(allowance(step, config)),
    }
    judged = msgspec.structs.replace(
        state,
        **fresh,
        step=step,
        health=health,
        allowance=allowance(step, config),
        changed_at=at if decision == ADVANCED else state.changed_at,
    )
    return judged, Judgement(decision, figures)

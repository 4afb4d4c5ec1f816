"""The queue verbs on ``postline.control``: what each means, how long it matters, and
publishing one with its audit event.

Every deliverer replica follows ``postline.control`` (compacted, key ``verb|target``) and
applies what it reads within a second or so; the CLI and the admin API only publish. Each
action is published together with a ``queue_action`` event on ``postline.events`` (who,
what, why), in one atomic publish: there is no action without its audit record.

States and commands. A replica that starts reads the whole table, so an action must still
mean something to a replica that was not running when it was published:

- ``queue_suspend`` is a **state** (KumoMTA's suspensions, Postfix's ``hold``): in force
  until its ``until`` or until resumed. Resuming removes it (a tombstone of its key: the
  table then holds exactly the suspensions in force) and flushes the target, so held mail
  goes at once rather than at its next pass.
- ``queue_flush``, ``queue_bounce`` and ``queue_delete`` are commands about the mail queued
  *before* them, so they carry their own end: a flush matters for what was written to a
  retry tier before it, until the longest tier has passed (by then all of that is due
  anyway); a bounce or delete for what was submitted before it, until the maximum age has
  passed (by then all of that has expired). A replica replays them within that window and
  ignores them after; a repeated action (same key) replaces the earlier one and reaches
  mail queued up to its own time.
- ``throttle_cancel`` is a **one-shot** command: it resets the throttles a replica has when
  it reads it, and a replica that starts later has none to reset.

Does not apply anything (``services/deliverer/control.py`` does) nor read the queue.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from shared.bus.base import Bus
from shared.config import Duration
from shared.errors import DecodeError, QueueInvalid
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
from shared.wire.records import ControlAction, ControlVerb, Event, EventKind, SmtpReply, now
from shared.wire.topics import CONTROL, EVENTS, OutRecord

#: The longest an operator's reason may be (it reaches the DSN of a bounce).
MAX_WHY = 200
#: The longest a suspension may be asked for at once (``--for``): a forgotten one ends.
MAX_SUSPEND = 30 * 86400.0
#: ``classification`` of the events a queue bounce or delete ends mail with: the bouncer
#: suppresses no recipient for it and the reputation stage counts nothing (it says nothing
#: about the recipient or the sender's mail).
OPERATOR = "operator"
#: The audit event's ``classification`` of a resume (no verb of its own: a tombstone).
RESUME = "queue_resume"

#: The verbs about mail already queued: the retry loop reads past held records for them.
SWEEPS = frozenset({ControlVerb.QUEUE_FLUSH, ControlVerb.QUEUE_BOUNCE, ControlVerb.QUEUE_DELETE})

QUEUE_VERBS = frozenset(
    {
        ControlVerb.QUEUE_SUSPEND,
        ControlVerb.QUEUE_FLUSH,
        ControlVerb.QUEUE_BOUNCE,
        ControlVerb.QUEUE_DELETE,
        ControlVerb.THROTTLE_CANCEL,
    }
)

#: The target kinds each verb takes. Mail in a retry tier knows neither its source address
#: (chosen when it is admitted) nor its provider for sure, so flush takes a provider (by
#: the domains' last MX answers) but no source; bounce and delete, which end mail for good,
#: take only what a Delivery itself names.
KINDS: dict[ControlVerb, tuple[str, ...]] = {
    ControlVerb.QUEUE_SUSPEND: (DOMAIN, PROVIDER, TENANT, SOURCE),
    ControlVerb.QUEUE_FLUSH: (MESSAGE, DOMAIN, PROVIDER, TENANT, ALL),
    ControlVerb.QUEUE_BOUNCE: (MESSAGE, DOMAIN, TENANT, ALL),
    ControlVerb.QUEUE_DELETE: (MESSAGE, DOMAIN, TENANT, ALL),
    ControlVerb.THROTTLE_CANCEL: (DOMAIN, PROVIDER),
}


def key(verb: ControlVerb, target: Target | str) -> str:
    """The action's key on ``postline.control`` (as ``CONTROL`` computes it)."""
    return f"{verb}|{target}"


def active_until(action: ControlAction, *, max_age: float, longest_tier: float) -> float:
    """Until when ``action`` matters to a replica (see the module docstring); ``inf`` for a
    suspension without an end."""
    if action.verb is ControlVerb.QUEUE_SUSPEND:
        return action.until if action.until > 0 else math.inf
    if action.verb is ControlVerb.QUEUE_FLUSH:
        return action.at + longest_tier
    if action.verb in (ControlVerb.QUEUE_BOUNCE, ControlVerb.QUEUE_DELETE):
        return action.at + max_age
    return action.at  # one-shot: only when it arrives


def operator_reply(verb: ControlVerb, why: str) -> SmtpReply:
    """The reply a queue bounce or delete ends mail with (RFC 3463 5.0.0: "other undefined
    status", the code Exim and KumoMTA use for an administrator's bounce)."""
    done = "bounced" if verb is ControlVerb.QUEUE_BOUNCE else "deleted"
    text = f"{done} by the operator" + (f": {why}" if why else "")
    return SmtpReply(code=550, enhanced="5.0.0", text=text)


@dataclass(frozen=True)
class Request:
    """A checked queue action, ready to publish."""

    verb: ControlVerb
    target: Target
    why: str = ""
    until: float = 0.0
    domains: tuple[str, ...] = ()  # where a message's or domain's mail waits (ControlAction)


def request(
    verb: ControlVerb,
    target: str,
    *,
    why: str = "",
    lasting: str = "",
    at: float | None = None,
    domains: tuple[str, ...] = (),
) -> Request:
    """Check an operator's action; :class:`QueueInvalid` names what is wrong. ``lasting``
    (suspend only) is a duration like ``"2h"`` ("" = until resumed); ``domains``: the
    recipient domains a message target's queued mail goes to (from the index)."""
    if verb not in QUEUE_VERBS:
        raise QueueInvalid(f"{verb} is not a queue action")
    parsed = parse_target(target, KINDS[verb])
    reason = check_why(why)
    until = 0.0
    if lasting:
        if verb is not ControlVerb.QUEUE_SUSPEND:
            raise QueueInvalid("only a suspension has a duration")
        try:
            seconds = float(Duration.parse(lasting))
        except ValueError as exc:
            raise QueueInvalid(f"duration: {exc}") from exc
        if not 0 < seconds <= MAX_SUSPEND:
            raise QueueInvalid(f"duration {lasting!r}: expected more than 0s and at most 30d")
        until = (now() if at is None else at) + seconds
    if parsed.kind == DOMAIN:
        domains = (parsed.name,)
    elif parsed.kind != MESSAGE:
        domains = ()  # mail of a tenant, provider or everything is in any partition
    return Request(verb, parsed, reason, until, tuple(sorted(set(domains))))


def check_why(why: str) -> str:
    """An operator's reason as kept: stripped, at most :data:`MAX_WHY` characters, printable."""
    text = why.strip()
    if len(text) > MAX_WHY:
        raise QueueInvalid(f"reason: longer than {MAX_WHY} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise QueueInvalid("reason: contains a control character")
    return text


def action_records(asked: Request, by: str, via: str, at: float) -> list[OutRecord]:
    """The action and its audit event, to publish together."""
    action = ControlAction(
        verb=asked.verb,
        target=str(asked.target),
        at=at,
        by=by,
        until=asked.until,
        why=asked.why,
        domains=asked.domains if asked.verb in SWEEPS else (),
    )
    return [CONTROL.out(action), audit_event(asked.target, asked.verb, by, via, at, action=action)]


def resume_records(target: Target, by: str, via: str, at: float) -> list[OutRecord]:
    """A resume: the suspension's tombstone, a flush of the target (held mail goes at once)
    and the audit event."""
    records = [CONTROL.tombstone(key(ControlVerb.QUEUE_SUSPEND, target))]
    if target.kind in KINDS[ControlVerb.QUEUE_FLUSH]:
        domains = (target.name,) if target.kind == DOMAIN else ()
        flush = ControlAction(
            verb=ControlVerb.QUEUE_FLUSH, target=str(target), at=at, by=by, domains=domains
        )
        records.append(CONTROL.out(flush))
    records.append(audit_event(target, RESUME, by, via, at, action=None))
    return records


def audit_event(
    target: Target, verb: str, by: str, via: str, at: float, *, action: ControlAction | None
) -> OutRecord:
    """The ``queue_action`` event of one action (``via``: "cli" or "api")."""
    terms = [str(target)]
    if action is not None and action.until:
        terms.append(f"until {action.until:.0f}")
    if action is not None and action.why:
        terms.append(f"why: {action.why}")
    event = Event(
        kind=EventKind.QUEUE_ACTION,
        at=at,
        message_id=target.name if target.kind == MESSAGE else "",
        domain=target.name if target.kind == DOMAIN else "",
        tenant=target.name if target.kind == TENANT else "",
        classification=str(verb),
        detail="; ".join(terms),
        by=by,
        stage=via,
    )
    return EVENTS.out(event)


async def publish(
    bus: Bus, asked: Request, *, by: str, via: str, at: float | None = None
) -> ControlAction:
    """Publish ``asked`` with its audit event (durable when this returns; ``BusError``
    otherwise); returns the action as published."""
    when = now() if at is None else at
    records = action_records(asked, by, via, when)
    await bus.ensure_topics([CONTROL.name, EVENTS.name])
    await bus.publish(records)
    return CONTROL.decode(records[0].value or b"")


async def publish_resume(
    bus: Bus, target: str, *, by: str, via: str, at: float | None = None
) -> Target:
    """Lift a suspension (whether or not one is in force: resuming twice is harmless)."""
    parsed = parse_target(target, KINDS[ControlVerb.QUEUE_SUSPEND])
    await bus.ensure_topics([CONTROL.name, EVENTS.name])
    await bus.publish(resume_records(parsed, by, via, now() if at is None else at))
    return parsed


async def read_actions(bus: Bus, verbs: Sequence[ControlVerb] = ()) -> list[ControlAction]:
    """The queue actions on ``postline.control`` now (of ``verbs``, all queue verbs when
    empty), oldest first; records this version cannot decode are left out."""
    await bus.ensure_topics([CONTROL.name])
    wanted = set(verbs) or QUEUE_VERBS
    actions: list[ControlAction] = []
    for value in (await bus.read_table(CONTROL.name)).values():
        try:
            action = CONTROL.decode(value)
        except DecodeError:
            continue
        if action.verb in wanted:
            actions.append(action)
    return sorted(actions, key=lambda a: a.at)

"""``postline queue suspend|resume|suspended|flush|bounce|delete|throttle-cancel``.

Each publishes an action on ``postline.control`` with its audit event
(``shared.queue.actions``); every running deliverer replica applies it within a second or
so. What Postfix and KumoMTA operators know them as:

- ``suspend TARGET [--for 2h]`` / ``resume TARGET``: ``postsuper -h`` / ``-H`` (hold and
  release), KumoMTA's ``kcli suspend`` / ``suspend-cancel``; TARGET is ``domain:D``,
  ``provider:P``, ``tenant:T`` or ``source:IP``;
- ``flush TARGET``: ``postqueue -f`` (``all``), ``postqueue -s D`` (``domain:D``),
  ``postqueue -i ID`` (a message id);
- ``bounce TARGET`` / ``delete TARGET``: ``postsuper -d`` deletes silently; a bounce ends
  the mail with a DSN to its sender (KumoMTA's ``kcli bounce``); TARGET is a message id,
  ``domain:D``, ``tenant:T`` or ``all`` (``all`` needs ``--yes``);
- ``throttle-cancel TARGET``: lift an adaptive throttle (``domain:D`` or ``provider:P``).

A message id (or a unique prefix) is looked up in the index first, and a target nothing
queued belongs to is refused with the reason, so a typo does not go unnoticed.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from shared.bus.base import Bus
from shared.cli.tenant import actor, with_bus
from shared.config import Config
from shared.errors import QueueInvalid, QueueNotFound
from shared.queue import actions, view
from shared.queue.targets import ALL, KINDS, MESSAGE, Target, parse_target
from shared.wire.records import ControlVerb, now

_VERBS = {
    "flush": ControlVerb.QUEUE_FLUSH,
    "bounce": ControlVerb.QUEUE_BOUNCE,
    "delete": ControlVerb.QUEUE_DELETE,
}


def add_control_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register the control commands under ``queue``."""
    suspend = sub.add_parser("suspend", help="hold a destination's, tenant's or source's mail")
    suspend.add_argument("target", help="domain:D, provider:P, tenant:T or source:IP")
    suspend.add_argument(
        "--for",
        dest="lasting",
        default="",
        metavar="DURATION",
        help="end by itself after this long (2h, 30m; default: until resumed)",
    )
    suspend.add_argument("--why", default="", help="the reason, kept with the action")
    suspend.set_defaults(handler=cmd_suspend)
    resume = sub.add_parser("resume", help="lift a suspension; its held mail goes at once")
    resume.add_argument("target", help="the suspended target")
    resume.set_defaults(handler=cmd_resume)
    listing = sub.add_parser("suspended", help="the suspensions in force")
    listing.set_defaults(handler=cmd_suspended)
    for name, help_text in (
        ("flush", "try deferred mail now: a message id, domain:D, provider:P, tenant:T, all"),
        ("bounce", "end queued mail with a DSN to its sender: a message id, domain:D, tenant:T"),
        ("delete", "end queued mail silently: a message id, domain:D, tenant:T"),
    ):
        command = sub.add_parser(name, help=help_text)
        command.add_argument("target", help="a message id (or prefix), KIND:NAME or all")
        if name != "flush":
            command.add_argument("--why", default="", help="the reason (a bounce's DSN says it)")
            command.add_argument("--yes", action="store_true", help="confirm the target all")
        command.set_defaults(handler=cmd_act, verb=_VERBS[name])
    cancel = sub.add_parser("throttle-cancel", help="lift the adaptive throttle of a destination")
    cancel.add_argument("target", help="domain:D or provider:P")
    cancel.set_defaults(handler=cmd_throttle_cancel)


async def cmd_suspend(args: argparse.Namespace, config: Config) -> int:
    """Publish a suspension."""
    asked = actions.request(
        ControlVerb.QUEUE_SUSPEND, args.target, why=args.why, lasting=args.lasting
    )

    async def body(bus: Bus) -> int:
        action = await actions.publish(bus, asked, by=actor(), via="cli")
        end = f" until {when(action.until)} UTC" if action.until else " until resumed"
        print(f"suspended {asked.target}{end}")
        return 0

    return await with_bus(config, body)


async def cmd_resume(args: argparse.Namespace, config: Config) -> int:
    """Lift a suspension (its held mail is flushed)."""

    async def body(bus: Bus) -> int:
        target = parse_target(args.target, actions.KINDS[ControlVerb.QUEUE_SUSPEND])
        suspended = {a.target for a in await actions.read_actions(bus, [ControlVerb.QUEUE_SUSPEND])}
        if str(target) not in suspended:
            raise QueueNotFound(f"{target} is not suspended (postline queue suspended lists them)")
        await actions.publish_resume(bus, str(target), by=actor(), via="cli")
        print(f"resumed {target}; its held mail is released")
        return 0

    return await with_bus(config, body)


async def cmd_suspended(args: argparse.Namespace, config: Config) -> int:
    """List the suspensions in force."""

    async def body(bus: Bus) -> int:
        current = now()
        found = [
            a
            for a in await actions.read_actions(bus, [ControlVerb.QUEUE_SUSPEND])
            if not a.until or a.until > current
        ]
        if not found:
            print("no suspension in force")
        for action in found:
            end = when(action.until) + " UTC" if action.until else "until resumed"
            why = f"  ({action.why})" if action.why else ""
            print(f"{action.target:<40} since {when(action.at)} UTC  {end}  by {action.by}{why}")
        return 0

    return await with_bus(config, body)


async def cmd_act(args: argparse.Namespace, config: Config) -> int:
    """Flush, bounce or delete queued mail."""
    verb: ControlVerb = args.verb

    async def body(bus: Bus) -> int:
        entries = await view.read_entries(bus)
        target = resolve_target(entries, args.target, verb)
        if target.kind == ALL and verb is not ControlVerb.QUEUE_FLUSH and not args.yes:
            raise QueueInvalid(f"{verb.value.removeprefix('queue_')} all needs --yes")
        view.check_target(entries, await view.read_snapshots(bus, now()), target)
        domains = view.domains_of(entries, target)
        asked = actions.request(verb, str(target), why=getattr(args, "why", ""), domains=domains)
        await actions.publish(bus, asked, by=actor(), via="cli")
        done = {"queue_flush": "flush", "queue_bounce": "bounce", "queue_delete": "delete"}
        print(f"{done[verb.value]} of {target} sent to every running deliverer")
        return 0

    return await with_bus(config, body)


def resolve_target(entries: list[Any], text: str, verb: ControlVerb) -> Target:
    """``text`` as a target of ``verb``: ``KIND:NAME``, ``all``, or a message id (or a
    delivery id, or a unique prefix) looked up in the index."""
    if text.strip() == ALL or text.partition(":")[0] in KINDS:
        return parse_target(text, actions.KINDS[verb])
    found = view.resolve(entries, text)
    return Target(MESSAGE, found[0].message_id)


async def cmd_throttle_cancel(args: argparse.Namespace, config: Config) -> int:
    """Lift a destination's adaptive throttle on every replica."""
    asked = actions.request(ControlVerb.THROTTLE_CANCEL, args.target)

    async def body(bus: Bus) -> int:
        await actions.publish(bus, asked, by=actor(), via="cli")
        print(f"throttle cancel of {asked.target} sent to every running deliverer")
        return 0

    return await with_bus(config, body)


def when(at: float) -> str:
    """A time for people (UTC, to the second); ``-`` for none."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at)) if at > 0 else "-"

"""The queue admin API, on the admin listener beside suppressions, tenants and dead letters.

Routes (each behind the admin bearer token; JSON in and out)::

    GET  /admin/queue/summary             ?by=domain|provider|tenant|source
    GET  /admin/queue/messages            ?domain=D&tenant=T&deferred=1: waiting Deliveries
    GET  /admin/queue/messages/<id>       one message's entries (id, delivery id or prefix);
                                          ?headers=1 adds its header block, ?body=1 the
                                          whole message (as text, undecodable bytes escaped)
    GET  /admin/queue/suspensions         the suspensions in force
    POST /admin/queue/suspend             {"target", "for"?, "why"?} -> 202
    POST /admin/queue/resume              {"target"} -> 202 (404: not suspended)
    POST /admin/queue/flush               {"target"}: a message id, "domain:D", ..., "all"
    POST /admin/queue/bounce              {"target", "why"?}: all needs "confirm": true
    POST /admin/queue/delete              {"target", "why"?}: likewise
    POST /admin/queue/throttle-cancel     {"target"}: "domain:D" or "provider:P"

An action answers 202 with the action as published (every running deliverer applies it
within seconds). Errors are ``{"error": ...}``: 400 for a malformed body, target, duration or
reason (unknown fields named), 404 for a message id nothing queued has, a target nothing
queued belongs to, a resume of what is not suspended. The same operations as ``postline
queue`` (``shared.queue``); the audit events name the caller as ``api:<address>``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from services.bouncer.admin_http import answering, caller, decode_body, json_response
from shared.bus.base import Bus
from shared.errors import QueueError, QueueInvalid, QueueNotFound
from shared.queue import actions, view
from shared.queue.targets import ALL, KINDS, MESSAGE, Target, domain_name, parse_target
from shared.runtime.http import HttpHandler, HttpRequest, HttpResponse, Router
from shared.wire.records import ControlAction, ControlVerb

BASE = "/admin/queue"
MAX_BODY = 4 * 1024  # a target, a duration and a reason
_VERBS = {
    "flush": ControlVerb.QUEUE_FLUSH,
    "bounce": ControlVerb.QUEUE_BOUNCE,
    "delete": ControlVerb.QUEUE_DELETE,
    "throttle-cancel": ControlVerb.THROTTLE_CANCEL,
}

#: The admin API's ``authenticated``: a handler behind the bearer token.
Wrap = Callable[[HttpHandler], HttpHandler]


class ActionBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of every action (the fields a verb does not take must stay empty)."""

    target: str
    why: str = ""
    confirm: bool = False  # bounce or delete "all"
    # "for" is a keyword in Python: the field is named for the JSON key.
    lasting: str = msgspec.field(default="", name="for")


class QueueApi:
    """Handlers of ``/admin/queue``."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    def register(self, router: Router, authenticated: Wrap) -> None:
        """Add the routes, each behind ``authenticated``."""
        routes: list[tuple[str, str, HttpHandler, int]] = [
            ("GET", BASE + "/summary", self.summary, 0),
            ("GET", BASE + "/messages", self.messages, 0),
            ("GET", BASE + "/messages/", self.message, 0),
            ("GET", BASE + "/suspensions", self.suspensions, 0),
            ("POST", BASE + "/suspend", self.suspend, MAX_BODY),
            ("POST", BASE + "/resume", self.resume, MAX_BODY),
        ]
        routes += [
            ("POST", f"{BASE}/{name}", self._acting(verb), MAX_BODY)
            for name, verb in _VERBS.items()
        ]
        for method, path, handler, max_body in routes:
            answered = answering(handler, not_found=QueueNotFound, error=QueueError)
            router.add(method, path, authenticated(answered), max_body=max_body)

    async def summary(self, request: HttpRequest) -> HttpResponse:
        """The summary (rows per domain, provider, tenant or source)."""
        by = _query(request, "by") or "domain"
        now = time.time()
        found = view.summary(
            await view.read_entries(self._bus), await view.read_snapshots(self._bus, now), by
        )
        return json_response(200, found.as_dict())

    async def messages(self, request: HttpRequest) -> HttpResponse:
        """The Deliveries waiting in the retry tiers."""
        domain = _query(request, "domain")
        tenant = _query(request, "tenant")
        entries = view.select(
            await view.read_entries(self._bus),
            domain=domain_name(domain) if domain else "",
            tenant=parse_target(f"tenant:{tenant}").name if tenant else "",
            deferred=_flag(request, "deferred"),
        )
        return json_response(200, [view.entry_dict(entry) for entry in entries])

    async def message(self, request: HttpRequest) -> HttpResponse:
        """One message's entries, with its headers or body when asked."""
        wanted = request.path[len(BASE + "/messages/") :]
        entries = view.resolve(await view.read_entries(self._bus), wanted)
        answer: dict[str, Any] = {
            "message_id": entries[0].message_id,
            "deliveries": [view.entry_dict(entry) for entry in entries],
        }
        if _flag(request, "headers") or _flag(request, "body"):
            copy = None
            for entry in entries:
                if (copy := await view.read_copy(self._bus, entry)) is not None:
                    break
            data = copy.data if copy is not None else None
            answer["headers"] = view.header_text(data) if data is not None else None
            if _flag(request, "body"):
                answer["body"] = data.decode("utf-8", "backslashreplace") if data else None
        return json_response(200, answer)

    async def suspensions(self, _request: HttpRequest) -> HttpResponse:
        """The suspensions in force."""
        now = time.time()
        found = await actions.read_actions(self._bus, [ControlVerb.QUEUE_SUSPEND])
        return json_response(200, [_action(a) for a in found if not a.until or a.until > now])

    async def suspend(self, request: HttpRequest) -> HttpResponse:
        """Publish a suspension."""
        body = await decode_body(request, ActionBody, QueueInvalid)
        asked = actions.request(
            ControlVerb.QUEUE_SUSPEND, body.target, why=body.why, lasting=body.lasting
        )
        _refuse_extra(body, confirm=False)
        return json_response(
            202, _action(await actions.publish(self._bus, asked, by=caller(request), via="api"))
        )

    async def resume(self, request: HttpRequest) -> HttpResponse:
        """Lift a suspension (its held mail is flushed)."""
        body = await decode_body(request, ActionBody, QueueInvalid)
        _refuse_extra(body, confirm=False, why=False, lasting=False)
        target = parse_target(body.target, actions.KINDS[ControlVerb.QUEUE_SUSPEND])
        suspended = await actions.read_actions(self._bus, [ControlVerb.QUEUE_SUSPEND])
        if str(target) not in {a.target for a in suspended}:
            raise QueueNotFound(f"{target} is not suspended")
        await actions.publish_resume(self._bus, str(target), by=caller(request), via="api")
        return json_response(202, {"resumed": str(target)})

    def _acting(self, verb: ControlVerb) -> HttpHandler:
        async def act(request: HttpRequest) -> HttpResponse:
            body = await decode_body(request, ActionBody, QueueInvalid)
            purge = verb in (ControlVerb.QUEUE_BOUNCE, ControlVerb.QUEUE_DELETE)
            _refuse_extra(body, confirm=purge, why=purge, lasting=False)
            target, domains = await self._target(verb, body.target)
            if target.kind == ALL and purge and not body.confirm:
                raise QueueInvalid(f'{verb.value.removeprefix("queue_")} all needs "confirm": true')
            asked = actions.request(verb, str(target), why=body.why, domains=domains)
            action = await actions.publish(self._bus, asked, by=caller(request), via="api")
            return json_response(202, _action(action))

        return act

    async def _target(self, verb: ControlVerb, text: str) -> tuple[Target, tuple[str, ...]]:
        """The target (``KIND:NAME``, ``all`` or a message id) and where its mail waits;
        checked against what is queued (not a throttle cancel: a throttle is not mail)."""
        if verb is ControlVerb.THROTTLE_CANCEL:
            return parse_target(text, actions.KINDS[verb]), ()
        entries = await view.read_entries(self._bus)
        if text.strip() == ALL or text.partition(":")[0] in KINDS:
            target = parse_target(text, actions.KINDS[verb])
        else:
            target = Target(MESSAGE, view.resolve(entries, text)[0].message_id)
        view.check_target(entries, await view.read_snapshots(self._bus, time.time()), target)
        return target, view.domains_of(entries, target)


def _refuse_extra(
    body: ActionBody, *, confirm: bool, why: bool = True, lasting: bool = True
) -> None:
    """Fields this action does not take must stay empty (a typo must not pass silently)."""
    extra = [
        name
        for name, given, allowed in (
            ("confirm", body.confirm, confirm),
            ("why", bool(body.why), why),
            ("for", bool(body.lasting), lasting),
        )
        if given and not allowed
    ]
    if extra:
        raise QueueInvalid(f"this action takes no {', '.join(extra)}")


def _action(action: ControlAction) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(action)
    data.pop("schema", None)
    return data


def _flag(request: HttpRequest, name: str) -> bool:
    return _query(request, name) in ("1", "true", "yes")


def _query(request: HttpRequest, name: str) -> str:
    return request.query.get(name, [""])[0]

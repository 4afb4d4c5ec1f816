"""Queue actions: what each verb takes, how long each matters, and the records published."""

from __future__ import annotations

import math

import pytest

from shared.errors import QueueInvalid
from shared.queue import actions
from shared.queue.targets import parse_target
from shared.wire.records import ControlAction, ControlVerb, EventKind
from shared.wire.topics import CONTROL, EVENTS

AT = 1_700_000_000.0


def test_a_suspension_may_have_an_end() -> None:
    asked = actions.request(ControlVerb.QUEUE_SUSPEND, "domain:a.test", lasting="2h", at=AT)
    assert (str(asked.target), asked.until) == ("domain:a.test", AT + 7200)
    forever = actions.request(ControlVerb.QUEUE_SUSPEND, "tenant:acme", at=AT)
    assert forever.until == 0


@pytest.mark.parametrize(
    ("verb", "target", "options", "why"),
    [
        (ControlVerb.QUEUE_SUSPEND, "message:abc", {}, "this action takes domain:"),
        (ControlVerb.QUEUE_SUSPEND, "all", {}, "this action takes"),
        (ControlVerb.QUEUE_BOUNCE, "provider:google", {}, "this action takes message:"),
        (ControlVerb.QUEUE_FLUSH, "source:192.0.2.1", {}, "this action takes message:"),
        (ControlVerb.THROTTLE_CANCEL, "tenant:acme", {}, "this action takes domain:"),
        (ControlVerb.QUEUE_FLUSH, "all", {"lasting": "1h"}, "only a suspension"),
        (ControlVerb.QUEUE_SUSPEND, "domain:a.test", {"lasting": "soon"}, "duration"),
        (ControlVerb.QUEUE_SUSPEND, "domain:a.test", {"lasting": "31d"}, "at most 30d"),
        (ControlVerb.QUEUE_BOUNCE, "all", {"why": "x" * 201}, "longer than 200"),
        (ControlVerb.QUEUE_BOUNCE, "all", {"why": "a\nb"}, "control character"),
        (ControlVerb.AUTH_UNBLOCK, "192.0.2.1", {}, "not a queue action"),
    ],
)
def test_bad_requests_are_refused(
    verb: ControlVerb, target: str, options: dict[str, str], why: str
) -> None:
    with pytest.raises(QueueInvalid, match=why):
        actions.request(verb, target, **options)


def action(verb: ControlVerb, until: float = 0.0) -> ControlAction:
    return ControlAction(verb=verb, target="domain:a.test", at=AT, until=until)


def test_how_long_each_action_matters() -> None:
    window = {"max_age": 3 * 86400.0, "longest_tier": 6 * 3600.0}
    assert actions.active_until(action(ControlVerb.QUEUE_SUSPEND), **window) == math.inf
    ending = action(ControlVerb.QUEUE_SUSPEND, until=AT + 60)
    assert actions.active_until(ending, **window) == AT + 60
    assert actions.active_until(action(ControlVerb.QUEUE_FLUSH), **window) == AT + 6 * 3600
    assert actions.active_until(action(ControlVerb.QUEUE_BOUNCE), **window) == AT + 3 * 86400
    assert actions.active_until(action(ControlVerb.QUEUE_DELETE), **window) == AT + 3 * 86400
    assert actions.active_until(action(ControlVerb.THROTTLE_CANCEL), **window) == AT


def test_an_action_is_published_with_its_audit_event() -> None:
    asked = actions.request(ControlVerb.QUEUE_BOUNCE, "domain:a.test", why="spam run")
    control, audit = actions.action_records(asked, "cli:ann", "cli", AT)
    assert (control.topic, control.key) == (CONTROL.name, b"queue_bounce|domain:a.test")
    published = CONTROL.decode(control.value or b"")
    assert (published.verb, published.by, published.why, published.at) == (
        ControlVerb.QUEUE_BOUNCE,
        "cli:ann",
        "spam run",
        AT,
    )
    event = EVENTS.decode(audit.value or b"")
    assert (event.kind, event.classification, event.domain, event.by, event.stage) == (
        EventKind.QUEUE_ACTION,
        "queue_bounce",
        "a.test",
        "cli:ann",
        "cli",
    )
    assert event.detail == "domain:a.test; why: spam run"


def test_a_resume_removes_the_suspension_flushes_and_is_audited() -> None:
    tombstone, flush, audit = actions.resume_records(parse_target("tenant:acme"), "api", "api", AT)
    assert (tombstone.key, tombstone.value) == (b"queue_suspend|tenant:acme", None)
    assert CONTROL.decode(flush.value or b"").verb is ControlVerb.QUEUE_FLUSH
    assert EVENTS.decode(audit.value or b"").classification == actions.RESUME


def test_a_source_resume_flushes_nothing() -> None:
    # A tier record does not know its source address (chosen when admitted): no flush.
    records = actions.resume_records(parse_target("source:192.0.2.1"), "api", "api", AT)
    assert [r.topic for r in records] == [CONTROL.name, EVENTS.name]


def test_operator_replies() -> None:
    bounce = actions.operator_reply(ControlVerb.QUEUE_BOUNCE, "spam run")
    assert str(bounce) == "550 5.0.0 bounced by the operator: spam run"
    assert str(actions.operator_reply(ControlVerb.QUEUE_DELETE, "")) == (
        "550 5.0.0 deleted by the operator"
    )


def test_an_action_names_the_domains_its_mail_waits_in() -> None:
    flush = actions.request(ControlVerb.QUEUE_FLUSH, "domain:A.test")
    assert flush.domains == ("a.test",)
    bounce = actions.request(
        ControlVerb.QUEUE_BOUNCE, "message:m1", domains=("b.test", "a.test", "a.test")
    )
    assert bounce.domains == ("a.test", "b.test")
    assert (
        actions.request(ControlVerb.QUEUE_DELETE, "tenant:acme", domains=("a.test",)).domains == ()
    )
    control, _ = actions.action_records(bounce, "cli:ann", "cli", AT)
    assert CONTROL.decode(control.value or b"").domains == ("a.test", "b.test")
    suspend = actions.request(ControlVerb.QUEUE_SUSPEND, "domain:a.test")
    control, _ = actions.action_records(suspend, "cli:ann", "cli", AT)
    assert CONTROL.decode(control.value or b"").domains == ()  # not a sweep

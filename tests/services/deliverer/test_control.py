"""The queue actions in force in a replica (pure logic on an injected clock): what a
suspension holds and until when, what a bounce or delete reaches, what a flush releases and
how long a sweep runs, each action applied once, one-shot commands not replayed at start."""

from __future__ import annotations

from typing import Any

from services.deliverer.control import Applied, QueueControl
from shared.bus.base import TopicPartition
from shared.wire.records import ControlAction, ControlVerb, Delivery
from shared.wire.topics import CONTROL, OutRecord

T0 = 1_700_000_000.0
MAX_AGE = 3 * 86400.0
LONGEST = 6 * 3600.0
TIER = "postline.retry.5m"
HERE, THERE = TopicPartition(TIER, 3), TopicPartition(TIER, 7)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def control(clock: Clock) -> tuple[QueueControl, list[Applied]]:
    seen: list[Applied] = []
    queue_control = QueueControl(max_age=MAX_AGE, longest_wait=LONGEST, clock=clock)
    queue_control.listen(seen.append)
    return queue_control, seen


def publish(control: QueueControl, verb: ControlVerb, target: str, **fields: Any) -> OutRecord:
    record = CONTROL.out(ControlAction(verb=verb, target=target, at=fields.pop("at", T0), **fields))
    assert record.key is not None
    control.apply(record.key, record.value)
    return record


def mail(**fields: Any) -> Delivery:
    values: dict[str, Any] = {
        "message_id": "m1",
        "delivery_id": "d1",
        "domain": "a.test",
        "mail_from": "",
        "rcpt_to": ("x@a.test",),
        "data": b"",
        "tenant": "acme",
        "submitted_at": T0 - 100,
    }
    values.update(fields)
    return Delivery(**values)


def test_a_suspension_holds_its_target_until_resumed() -> None:
    clock = Clock()
    qc, seen = control(clock)
    record = publish(qc, ControlVerb.QUEUE_SUSPEND, "domain:a.test", by="cli:ann")
    held = qc.suspension(mail())
    assert held is not None and held.action.by == "cli:ann" and len(seen) == 1
    assert qc.suspension(mail(domain="b.test")) is None
    assert record.key is not None
    qc.apply(record.key, None)  # the resume's tombstone
    assert qc.suspension(mail()) is None


def test_suspensions_by_tenant_provider_and_source_and_their_end() -> None:
    clock = Clock()
    qc, _ = control(clock)
    publish(qc, ControlVerb.QUEUE_SUSPEND, "tenant:acme", until=T0 + 60)
    publish(qc, ControlVerb.QUEUE_SUSPEND, "provider:google")
    publish(qc, ControlVerb.QUEUE_SUSPEND, "source:192.0.2.7")
    assert qc.suspension(mail(tenant="other")) is None
    assert qc.suspension(mail(tenant="other"), provider="google") is not None
    assert qc.suspension(mail(tenant="other"), source="192.0.2.7") is not None
    assert qc.suspension(mail(tenant="")) is None  # the default tenant is not acme
    ends = qc.suspension(mail(), provider="google")
    assert ends is not None and ends.target.kind == "provider"  # the one ending last
    clock.now = T0 + 61
    assert qc.suspension(mail()) is None  # the tenant's suspension ended by itself


def test_each_action_is_applied_once_even_when_read_again() -> None:
    clock = Clock()
    qc, seen = control(clock)
    record = publish(qc, ControlVerb.QUEUE_FLUSH, "all")
    assert record.key is not None
    assert qc.apply(record.key, record.value) is None  # the follower started over
    assert len(seen) == 1
    publish(qc, ControlVerb.QUEUE_FLUSH, "all", at=T0 + 5)  # asked again: a new action
    assert len(seen) == 2


def test_a_one_shot_command_found_at_start_is_not_done_again() -> None:
    clock = Clock()
    qc, seen = control(clock)
    old = CONTROL.out(
        ControlAction(verb=ControlVerb.THROTTLE_CANCEL, target="domain:a.test", at=T0)
    )
    assert old.key is not None
    assert qc.apply(old.key, old.value, replayed=True) is None
    assert qc.apply(old.key, old.value) is None  # the follower reads it again
    publish(qc, ControlVerb.THROTTLE_CANCEL, "domain:a.test", at=T0 + 1)
    assert [a.action.verb for a in seen] == [ControlVerb.THROTTLE_CANCEL]


def test_a_bounce_reaches_what_was_submitted_before_it_for_as_long_as_it_can_be_queued() -> None:
    clock = Clock()
    qc, _ = control(clock)
    publish(qc, ControlVerb.QUEUE_BOUNCE, "domain:a.test", why="spam run")
    purge = qc.purge(mail())
    assert purge is not None and purge.action.why == "spam run"
    assert qc.purge(mail(submitted_at=T0 + 1)) is None  # submitted after the bounce
    assert qc.purge(mail(domain="b.test")) is None
    clock.now = T0 + MAX_AGE + 1
    assert qc.purge(mail()) is None  # everything it could reach has expired


def test_a_message_target_reaches_the_message_whenever_it_was_submitted() -> None:
    clock = Clock()
    qc, _ = control(clock)
    publish(qc, ControlVerb.QUEUE_DELETE, "message:m1")
    publish(qc, ControlVerb.QUEUE_BOUNCE, "message:m1")
    found = qc.purge(mail(submitted_at=T0 + 10))
    assert found is not None and found.action.verb is ControlVerb.QUEUE_BOUNCE  # bounce first
    assert qc.purge(mail(message_id="m2")) is None


def test_a_flush_releases_what_was_written_before_this_replica_read_it() -> None:
    clock = Clock()
    qc, _ = control(clock)
    clock.now = T0 + 2  # read two seconds after it was published
    publish(qc, ControlVerb.QUEUE_FLUSH, "domain:a.test")
    assert qc.flushed(mail(), written=T0 + 1)
    assert not qc.flushed(mail(), written=T0 + 3)  # deferred again after the flush
    assert not qc.flushed(mail(domain="b.test"), written=T0)
    publish(qc, ControlVerb.QUEUE_FLUSH, "provider:google")
    assert qc.flushed(mail(domain="b.test"), written=T0, provider="google")
    clock.now = T0 + LONGEST + 3
    assert not qc.flushed(mail(), written=T0)  # by now that mail came due by itself


def test_a_sweep_reads_past_records_older_than_the_action_while_they_can_wait() -> None:
    clock = Clock()
    qc, _ = control(clock)
    assert not qc.sweeping(T0 - 10, HERE)
    publish(qc, ControlVerb.QUEUE_DELETE, "tenant:acme")
    assert qc.sweeping(T0 - 10, HERE) and qc.sweeping(T0 - 10, THERE)  # a tenant: everywhere
    assert not qc.sweeping(T0 + 1, HERE)  # written after it (or rewritten by the sweep itself)
    clock.now = T0 + LONGEST + 1
    assert not qc.sweeping(T0 - 10, HERE)
    qc.prune()  # the delete still matters for mail submitted before it (max age)
    assert qc.in_force(ControlVerb.QUEUE_DELETE)


def test_expired_actions_are_pruned_and_foreign_records_ignored() -> None:
    clock = Clock()
    qc, seen = control(clock)
    publish(qc, ControlVerb.QUEUE_FLUSH, "all")
    publish(qc, ControlVerb.AUTH_UNBLOCK, "192.0.2.1")  # ingest's verb
    qc.apply(b"queue_flush|domain:x.test", b"\xc1 not msgpack")
    qc.apply(
        b"queue_flush|bad",
        CONTROL.encode(ControlAction(verb=ControlVerb.QUEUE_FLUSH, target="bad", at=T0)),
    )
    assert [a.action.target for a in seen] == ["all"]
    clock.now = T0 + LONGEST + 1
    qc.prune()
    assert qc.in_force(ControlVerb.QUEUE_FLUSH) == []


def test_a_sweep_for_named_domains_reads_only_their_partitions_once_known() -> None:
    clock = Clock()
    qc, seen = control(clock)
    publish(qc, ControlVerb.QUEUE_BOUNCE, "message:m1", domains=("a.test",))
    (applied,) = seen
    assert qc.needs_scope(applied)
    assert not qc.sweeping(T0 - 10, HERE)  # not before the partitions are known
    qc.scope(applied, frozenset({HERE}))
    assert qc.sweeping(T0 - 10, HERE) and not qc.sweeping(T0 - 10, THERE)
    qc.scope(applied, None)  # the bus could not say: every partition
    assert qc.sweeping(T0 - 10, THERE)
    publish(qc, ControlVerb.QUEUE_BOUNCE, "message:m1", domains=("a.test",), at=T0 + 1)
    assert not qc.sweeping(T0 - 10, HERE)  # the new action's partitions are not known yet
    qc.scope(applied, frozenset({THERE}))  # a late answer about the replaced action
    assert not qc.sweeping(T0 - 10, THERE)


def test_a_flush_read_at_start_reaches_only_what_was_deferred_before_it() -> None:
    clock = Clock()
    qc, _ = control(clock)
    clock.now = T0 + 600  # this replica starts ten minutes after the flush
    record = CONTROL.out(ControlAction(verb=ControlVerb.QUEUE_FLUSH, target="all", at=T0))
    assert record.key is not None
    qc.apply(record.key, record.value, replayed=True)
    assert qc.flushed(mail(), written=T0 - 1)
    assert not qc.flushed(mail(), written=T0 + 300)  # deferred again since: not flushed
    assert not qc.sweeping(T0 + 300, HERE)

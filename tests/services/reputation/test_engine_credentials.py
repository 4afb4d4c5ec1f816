"""The engine's compromised-account detection on event sequences with their own times: a
burst holds once (the control action, the event, the record), a release restarts the
current bucket, hard bounces find their credential, and a restart keeps the state."""

from __future__ import annotations

from collections.abc import Iterable

from services.reputation.config import CredentialsConfig, ReputationConfig
from services.reputation.engine import Engine, Outcome
from shared import credential_holds
from shared.bounceclass.rules import load_rules
from shared.reputation import HOUR
from shared.wire.records import ControlVerb, CredentialWindow, Event, EventKind, SmtpReply
from shared.wire.topics import CONTROL, EVENTS, REPUTATION

T0 = 1_780_000_000.0 - 1_780_000_000.0 % HOUR  # an hour's start; never the wall clock
LOGIN = "shop-app"
KEY = "credential|shop-app"
NO_USER = SmtpReply(code=550, enhanced="5.1.1", text="no such user")


def engine(**settings: object) -> Engine:
    config = ReputationConfig(credentials=CredentialsConfig(**settings))  # type: ignore[arg-type]
    return Engine(config, load_rules(), lambda _: None)


def accepted(n: int, at: float, login: str = LOGIN, prefix: str = "m") -> list[Event]:
    return [
        Event(
            kind=EventKind.ACCEPTED,
            message_id=f"{prefix}-{at}-{i}",
            at=at + i * 0.001,
            stage="ingest",
            tenant="shop",
            credential=login,
            recipients=1,
            recipient_domains=("dest.test",),
        )
        for i in range(n)
    ]


def batch(engine: Engine, events: Iterable[Event]) -> Outcome:
    for event in events:
        engine.apply(event)
    outcome = engine.finish()
    engine.committed()
    return outcome


def window(engine: Engine) -> CredentialWindow:
    record = engine.table.get(KEY)
    assert record is not None and record.credential is not None
    return record.credential


def baseline(engine: Engine, hours: int = 5, per_hour: int = 10) -> None:
    for hour in range(hours):
        assert not batch(engine, accepted(per_hour, T0 + hour * HOUR)).holds


def operator(classification: str, at: float) -> Event:
    return credential_holds.credential_event(
        LOGIN, classification, by="ops", why="checked with the customer", at=at, stage="cli"
    )


def test_a_burst_is_held_once_with_its_action_event_and_record() -> None:
    found = engine()
    baseline(found)
    burst = T0 + 5 * HOUR
    outcome = batch(found, accepted(500, burst))
    [(event, signals)] = outcome.holds
    assert signals == ("volume",) and event.kind is EventKind.CREDENTIAL
    assert (event.credential, event.classification, event.by) == (LOGIN, "held", "reputation")
    assert event.figures["messages"] == 500 and event.figures["baseline_messages"] == 10
    [action] = [CONTROL.decode(r.value or b"") for r in outcome.records if r.topic == CONTROL.name]
    assert (action.verb, action.target, action.why) == (
        ControlVerb.CREDENTIAL_HOLD,
        "credential:shop-app",
        event.detail,
    )
    published = [EVENTS.decode(r.value or b"") for r in outcome.records if r.topic == EVENTS.name]
    assert [e.classification for e in published] == ["held"]
    assert window(found).held and window(found).why == event.detail
    # Still held: more of the burst holds nothing again.
    assert not batch(found, accepted(500, burst + 60, prefix="n")).holds


def test_the_stages_own_event_changes_nothing_and_a_release_restarts_the_bucket() -> None:
    found = engine()
    baseline(found)
    burst = T0 + 5 * HOUR
    [(event, _)] = batch(found, accepted(500, burst)).holds
    before = window(found)
    batch(found, [event])  # the stage reads its own decision back: already applied
    assert window(found) == before
    batch(found, [operator("released", burst + 120)])
    after = window(found)
    assert not after.held and [b.index for b in after.buckets][-1] < int(burst // HOUR)
    # The same burst goes on: counted afresh, not held again at once.
    assert not batch(found, accepted(50, burst + 180, prefix="r")).holds
    # An operator's own hold is recorded: the stage does not hold it a second time.
    batch(found, [operator("held", burst + 240)])
    assert window(found).held
    assert not batch(found, accepted(500, burst + 300, prefix="s")).holds


def test_hard_bounces_find_their_credential() -> None:
    found = engine()
    baseline(found, per_hour=30)
    now = T0 + 5 * HOUR
    sent = accepted(30, now)
    bounces = [
        Event(
            kind=EventKind.BOUNCED,
            message_id=e.message_id,
            at=now + 600,
            stage="deliverer",
            tenant="shop",
            reply=NO_USER,
            mx="mx.dest.test",
        )
        for e in sent[:10]
    ]
    unknown = Event(kind=EventKind.BOUNCED, message_id="never-seen", at=now + 601, reply=NO_USER)
    [(_, signals)] = batch(found, [*sent, *bounces, unknown]).holds
    assert signals == ("hard_bounces",)
    assert window(found).buckets[-1].hard_bounces == 10


def test_the_state_survives_a_restart_from_the_compacted_records() -> None:
    first = engine()
    baseline(first)
    batch(first, accepted(500, T0 + 5 * HOUR))
    records = {k: r for k in first.table.all_keys() if (r := first.table.get(k)) is not None}
    encoded = {k: REPUTATION.decode(REPUTATION.encode(r)) for k, r in records.items()}
    second = engine()
    second.load(encoded)
    assert window(second) == window(first) and window(second).held
    assert not batch(second, accepted(500, T0 + 5 * HOUR + 60, prefix="x")).holds


def test_disabled_counts_nothing() -> None:
    found = engine(enabled=False)
    batch(found, accepted(600, T0))
    assert found.table.get(KEY) is None


def test_a_relayed_message_without_credential_is_not_counted() -> None:
    found = engine()
    batch(found, accepted(600, T0, login=""))
    assert found.table.all_keys() == []

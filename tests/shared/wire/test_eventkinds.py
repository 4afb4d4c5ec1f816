"""The table of each kind's fields (``shared.wire.eventkinds``) against the real writers.

The end-to-end clusters check every event their stages write (``tests/e2e``: accepted,
signed, delivered, deferred, bounced, suppressed, rejected, complained, unsubscribed,
queue actions, deletions...); this file calls the writers those runs do not reach, or
reach only on one branch, with what they are given in production, and checks their events
the same way (``testing.eventschema``): valid under the strict schema, and nothing set
that the kind does not declare.
"""

from __future__ import annotations

import msgspec
import pytest

from services.deliverer.report import throttle_event
from services.deliverer.retry import expired_events
from services.deliverer.throttle import ThrottleChange
from services.ingest import accept, replies
from services.ingest.config import ListenerConfig
from services.ingest.core import rejection_event
from services.ingest.policy.base import Decision, SessionInfo, Transaction
from shared import credential_holds, deadletters, quarantine, tenant_admin
from shared.queue.actions import audit_event
from shared.queue.targets import parse_target
from shared.wire.records import (
    ClientInfo,
    ControlVerb,
    DeadLetter,
    Delivery,
    Event,
    EventKind,
    Quarantined,
    SmtpReply,
    Submission,
    Tenant,
)
from shared.wire.topics import EVENTS, OutRecord
from testing import eventschema

AT = 1796637600.125
MESSAGE = "5f0c8e2a9b1d4c7e8f3a6b2c1d0e9f8a"


def events_of(records: list[OutRecord]) -> list[Event]:
    return [EVENTS.decode(r.value) for r in records if r.topic == EVENTS.name and r.value]


def delivery() -> Delivery:
    return Delivery(
        message_id=MESSAGE,
        delivery_id="d1",
        domain="example.net",
        mail_from="b+token@bounces.test",
        rcpt_to=("alice@example.net", "bob@example.net"),
        data=b"Subject: hi\r\n\r\nbody\r\n",
        sender="app@shop.example",
        attempt=4,
        tags={"campaign": "x"},
        bulk=True,
        tenant="acme",
    )


def test_ingest_accepted_and_suppressed() -> None:
    txn = Transaction(
        id=MESSAGE,
        mail_from="app@shop.example",
        rcpt_to=["a@example.net", "b@example.org"],
        dropped=["b@example.org"],
        tenant="acme",
        credential="acme-app",
    )
    events = accept.events(txn, {"campaign": "x"}, AT, tls="TLSv1.3", detail="HTTP API, key k")
    assert [e.kind for e in events] == [EventKind.ACCEPTED, EventKind.SUPPRESSED]
    eventschema.assert_published(events)
    null_sender = Transaction(id=MESSAGE, mail_from="", rcpt_to=["a@example.net"])
    eventschema.assert_published(accept.events(null_sender, {}, AT))


@pytest.mark.parametrize("in_transaction", [True, False])
def test_ingest_rejected(in_transaction: bool) -> None:
    info = SessionInfo(
        ip="198.51.100.7", port=41000, listener=ListenerConfig(name="submission"), tls=None
    )
    txn = Transaction(id=MESSAGE, mail_from="app@shop.example") if in_transaction else None
    decision = Decision(replies.TENANT_TOO_MANY_RECIPIENTS, "tenant_recipients")
    recipient = "a@example.net" if in_transaction else ""
    eventschema.assert_published([rejection_event(info, txn, decision, recipient)])


def test_deliverer_expired_and_throttled() -> None:
    reply = SmtpReply(code=451, enhanced="4.4.2", text="timeout")
    expired = events_of(
        expired_events(delivery(), AT, reply) + expired_events(delivery(), AT, None)
    )
    assert {e.kind for e in expired} == {EventKind.EXPIRED}
    eventschema.assert_published(expired)
    for change in (
        ThrottleChange("throttle", 2, 30.0, AT + 60, SmtpReply(code=421, text="slow down")),
        ThrottleChange("recover", 10, 0.0, 0.0),
    ):
        eventschema.assert_published(
            events_of([throttle_event("example.net", "other", change, AT)])
        )


def test_tenant_changes() -> None:
    tenant = Tenant(id="acme", name="Acme", created_at=AT, updated_at=AT, revision=1)
    after, records = tenant_admin.staged_change(
        tenant,
        lambda t: msgspec.structs.replace(t, name="Acme Shop"),
        by="cli:ops",
        detail="set name",
        at=AT,
    )
    assert after.name == "Acme Shop"
    [event] = events_of(records)
    assert event.kind is EventKind.TENANT_CHANGED
    eventschema.assert_published([event])
    data = eventschema.as_received(event)["data"]
    assert (data["before"]["name"], data["after"]["name"]) == ("Acme", "Acme Shop")


def test_credential_hold_and_release() -> None:
    for classification in ("held", "released"):
        event = credential_holds.credential_event(
            "acme-app",
            classification,
            by="reputation",
            why="recipient domains per hour 412",
            at=AT,
            stage="reputation",
            tenant="acme",
            figures={"domains": 412.0} if classification == "held" else None,
        )
        eventschema.assert_published([event])


@pytest.mark.parametrize(
    "target", ["message:" + MESSAGE, "domain:example.net", "tenant:acme", "all"]
)
def test_queue_actions(target: str) -> None:
    record = audit_event(
        parse_target(target), ControlVerb.QUEUE_FLUSH, "cli:ops", "cli", AT, action=None
    )
    eventschema.assert_published(events_of([record]))


def test_quarantine_release_and_delete() -> None:
    submission = Submission(
        id=MESSAGE,
        received_at=AT,
        client=ClientInfo(ip="198.51.100.7"),
        mail_from="app@shop.example",
        rcpt_to=("a@example.net",),
        data=b"Subject: x\r\n\r\n",
        tenant="acme",
        tags={"campaign": "x"},
    )
    held = Quarantined(
        submission=submission, at=AT, score=16.0, required=15.0, symbols={"GTUBE": 15.0}
    )
    events = [
        quarantine._event(
            quarantine.QuarantineEntry(MESSAGE, held), "released", at=AT, by="cli:ops", why="ok"
        ),
        quarantine._event(
            quarantine.QuarantineEntry(MESSAGE, None, "bad"), "deleted", at=AT, by="cli:ops", why=""
        ),
    ]
    eventschema.assert_published(events)


def test_dead_letter_actions() -> None:
    letter = DeadLetter(
        topic="postline.submitted",
        partition=3,
        offset=17,
        key=b"k",
        value=b"v",
        reason="cannot decode",
        group="signer",
        at=AT,
    )
    for entry in (deadletters.DeadEntry(0, 42, letter), deadletters.DeadEntry(0, 43, None)):
        record = deadletters._audit(entry, "redriven", "redriven", at=AT, by="cli:ops")
        eventschema.assert_published(events_of([record]))

"""RFC 8689 4.3: the DSN of a message sent with REQUIRETLS goes with REQUIRETLS too (it holds
the message's headers); any other DSN has no TLS requirement of its own."""

from __future__ import annotations

from services.bouncer.config import DsnPolicy
from services.bouncer.dsngen import DsnGenerator
from shared.wire.records import Delivery, Event, EventKind, SmtpReply
from shared.wire.topics import OUTBOUND


def dsn_for(requiretls: bool) -> Delivery:
    event = Event(
        kind=EventKind.BOUNCED,
        message_id="m1",
        at=1_780_000_000.0,
        recipient="bob@dest.test",
        domain="dest.test",
        sender="alice@sender.test",
        reply=SmtpReply(code=550, enhanced="5.7.30", text="REQUIRETLS support required"),
        headers=b"Subject: secret\r\n",
        requiretls=requiretls,
    )
    record = DsnGenerator(DsnPolicy()).for_event(event)
    assert record is not None and record.value is not None
    delivery = OUTBOUND.decode(record.value)
    assert isinstance(delivery, Delivery) and delivery.is_dsn
    return delivery


def test_the_dsn_of_a_requiretls_message_requires_it_too() -> None:
    dsn = dsn_for(requiretls=True)
    assert (dsn.requiretls, dsn.require_tls, dsn.rcpt_to) == (True, True, ("alice@sender.test",))


def test_any_other_dsn_has_no_requirement() -> None:
    dsn = dsn_for(requiretls=False)
    assert (dsn.requiretls, dsn.require_tls) == (False, False)

"""SMTP sessions against real aiosmtpd sinks on loopback."""

from __future__ import annotations

import msgspec
import pytest

from services.deliverer.config import Timeouts
from services.deliverer.outcome import Outcome
from services.deliverer.session import Session, SessionOptions, Target
from services.deliverer.transport.policy import ResultType, TlsCheckFailed
from shared.wire.records import Delivery, RecipientDsn
from testing.smtpsink import DROP, SmtpSink, server_tls_context

MESSAGE = b"From: a@sender.test\r\nTo: b@dest.test\r\nSubject: hi\r\n\r\nbody\r\n"
OPTIONS = SessionOptions(ehlo_name="relay.postline.test", timeouts=Timeouts(connect=5))


def delivery(*rcpts: str, n: int = 0) -> Delivery:
    return Delivery(
        message_id=f"m{n}",
        delivery_id=f"d{n}",
        domain="dest.test",
        mail_from="bounce@sender.test",
        rcpt_to=rcpts or ("b@dest.test",),
        data=MESSAGE,
    )


def target(sink: SmtpSink) -> Target:
    return Target(host="mx.dest.test", address=sink.host, port=sink.port)


async def test_reuse_one_connection_for_several_messages() -> None:
    async with SmtpSink() as sink:
        session = await Session.open(target(sink), OPTIONS)
        for n in range(3):
            results = await session.send(delivery(n=n), max_recipients=100)
            assert results["b@dest.test"].outcome is Outcome.DELIVERED
            assert results["b@dest.test"].reply.code == 250
        await session.close()
        assert sink.connections == 1
        assert [m.connection for m in sink.messages] == [1, 1, 1]
        assert sink.messages[0].data.endswith(b"body\r\n")
        assert session.tls == ""


async def test_partial_recipient_acceptance() -> None:
    async with SmtpSink() as sink:
        sink.script_rcpt("gone@dest.test", "550 5.1.1 No such user")
        sink.script_rcpt("full@dest.test", "452 4.2.2 Mailbox full")
        session = await Session.open(target(sink), OPTIONS)
        results = await session.send(
            delivery("ok@dest.test", "gone@dest.test", "full@dest.test"), max_recipients=100
        )
        assert results["ok@dest.test"].outcome is Outcome.DELIVERED
        assert results["gone@dest.test"].outcome is Outcome.BOUNCED
        assert results["gone@dest.test"].reply.enhanced == "5.1.1"
        # A 452 after an accepted recipient is "too many": carried to a second transaction.
        assert results["full@dest.test"].outcome is Outcome.DELIVERED
        assert sink.recipients() == ["ok@dest.test", "full@dest.test"]
        await session.close()


async def test_452_too_many_recipients_splits_transactions() -> None:
    rcpts = [f"r{i}@dest.test" for i in range(7)]
    async with SmtpSink(max_recipients=3) as sink:
        session = await Session.open(target(sink), OPTIONS)
        results = await session.send(delivery(*rcpts), max_recipients=100)
        assert {r.outcome for r in results.values()} == {Outcome.DELIVERED}
        assert [len(m.rcpt_tos) for m in sink.messages] == [3, 3, 1]
        assert sorted(sink.recipients()) == sorted(rcpts)
        assert sink.connections == 1


async def test_policy_recipients_per_transaction() -> None:
    rcpts = [f"r{i}@dest.test" for i in range(5)]
    async with SmtpSink() as sink:
        session = await Session.open(target(sink), OPTIONS)
        await session.send(delivery(*rcpts), max_recipients=2)
        assert [len(m.rcpt_tos) for m in sink.messages] == [2, 2, 1]


async def test_dropped_mid_data_is_deferred_and_breaks_the_session() -> None:
    async with SmtpSink() as sink:
        sink.script_data(DROP)
        session = await Session.open(target(sink), OPTIONS)
        results = await session.send(delivery(), max_recipients=100)
        assert results["b@dest.test"].outcome is Outcome.DEFERRED
        assert results["b@dest.test"].reply.enhanced == "4.4.2"
        assert not session.usable
        assert len(sink.dropped) == 1 and not sink.messages


async def test_421_defers_everyone_and_breaks_the_session() -> None:
    async with SmtpSink() as sink:
        sink.script_rcpt("b@dest.test", "421 4.7.0 Try again later")
        session = await Session.open(target(sink), OPTIONS)
        results = await session.send(delivery("a@dest.test", "b@dest.test", "c@dest.test"), 100)
        assert {r: c.outcome for r, c in results.items()} == dict.fromkeys(
            ["a@dest.test", "b@dest.test", "c@dest.test"], Outcome.DEFERRED
        )
        assert results["c@dest.test"].reply.code == 421
        assert not session.usable
        await session.close()


async def test_tls_required_but_not_offered_never_sends_plaintext() -> None:
    async with SmtpSink() as sink:
        options = SessionOptions(ehlo_name="relay.test", timeouts=Timeouts(), tls="required")
        with pytest.raises(TlsCheckFailed) as info:
            await Session.open(target(sink), options)
        assert info.value.result_type is ResultType.STARTTLS_NOT_SUPPORTED
        assert info.value.outcome is not None
        assert info.value.outcome.failure is ResultType.STARTTLS_NOT_SUPPORTED
        assert not sink.messages and not sink.dropped


@pytest.mark.parametrize("mode", ["opportunistic", "required"])
async def test_starttls_when_offered(mode: str) -> None:
    async with SmtpSink(tls_context=server_tls_context()) as sink:
        options = SessionOptions(ehlo_name="relay.test", timeouts=Timeouts(), tls=mode)
        session = await Session.open(target(sink), options)
        assert session.tls.startswith("TLS")
        await session.send(delivery(), 100)
        await session.close()
        assert sink.messages[0].tls


async def test_source_address_binding() -> None:
    async with SmtpSink() as sink:
        options = SessionOptions(
            ehlo_name="relay.test", timeouts=Timeouts(), source_address="127.0.0.7"
        )
        session = await Session.open(target(sink), options)
        await session.send(delivery(), 100)
        await session.close()
        assert sink.messages[0].peer[0] == "127.0.0.7"


async def test_connection_refused_raises() -> None:
    async with SmtpSink() as sink:
        port = sink.port
    with pytest.raises(OSError):
        await Session.open(Target("mx.dest.test", "127.0.0.1", port), OPTIONS)


def dsn_delivery() -> Delivery:
    return msgspec.structs.replace(
        delivery("b@dest.test", "c@dest.test"),
        dsn_ret="HDRS",
        dsn_envid="QQ 314+159",
        dsn={
            "b@dest.test": RecipientDsn(notify=("SUCCESS", "DELAY"), orcpt="rfc822;B+x@Dest.test")
        },
    )


async def test_dsn_parameters_go_to_a_server_offering_dsn() -> None:
    # RFC 3461 5.2.1: relayed to a DSN server with the parameters, xtext encoded again.
    async with SmtpSink(dsn=True) as sink:
        session = await Session.open(target(sink), OPTIONS)
        assert session.dsn
        results = await session.send(dsn_delivery(), max_recipients=100)
        assert {r.outcome for r in results.values()} == {Outcome.DELIVERED}
        await session.close()
        assert sink.dsn_params == [
            ("MAIL", "bounce@sender.test", ("RET=HDRS", "ENVID=QQ+20314+2B159")),
            ("RCPT", "b@dest.test", ("NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;B+2Bx@Dest.test")),
            ("RCPT", "c@dest.test", ()),
        ]


async def test_dsn_parameters_are_not_sent_to_a_server_without_dsn() -> None:
    # RFC 3461 5.2.2: such a server would refuse them (555); the mail goes without them.
    async with SmtpSink() as sink:
        session = await Session.open(target(sink), OPTIONS)
        assert not session.dsn
        results = await session.send(dsn_delivery(), max_recipients=100)
        assert {r.outcome for r in results.values()} == {Outcome.DELIVERED}
        await session.close()
        assert [params for _, _, params in sink.dsn_params] == [(), (), ()]

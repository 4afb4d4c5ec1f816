"""The outcome classifier, tested against a table of real replies and errors."""

from __future__ import annotations

import ssl

import aiosmtplib
import pytest

from services.deliverer.outcome import (
    NULL_MX,
    DeliveryFailure,
    Outcome,
    classify,
    parse_reply,
)
from shared.wire.records import SmtpReply

D, F, B = Outcome.DELIVERED, Outcome.DEFERRED, Outcome.BOUNCED

REPLIES = [
    (250, "2.0.0 OK 1700000000 a1-20020a05 - gsmtp", D),
    (250, "Ok: queued as 4XyZ", D),
    (251, "2.1.5 User not local; will forward", D),
    (421, "4.7.0 [1.2.3.4] Our system has detected an unusual rate of unsolicited mail", F),
    (421, "4.7.28 Gmail has detected an unusual rate of mail originating from your IP", F),
    (451, "4.7.650 The mail server [1.2.3.4] has been temporarily rate limited", F),
    (421, "4.7.0 [TSS04] Messages from 1.2.3.4 temporarily deferred due to user complaints", F),
    (450, "4.2.1 The user you are trying to contact is receiving mail too quickly", F),
    (452, "4.5.3 Too many recipients", F),
    (452, "4.2.2 The email account that you tried to reach is over quota", F),
    (550, "5.1.1 The email account that you tried to reach does not exist", B),
    (550, "5.7.1 Service unavailable, Client host blocked using Spamhaus", B),
    (554, "5.7.1 Message rejected due to content restrictions", B),
    (552, "5.2.2 Mailbox full", B),
    (553, "sorry, that domain isn't in my list of allowed rcpthosts", B),
    (550, "4.2.0 contradictory enhanced code", F),  # class 4 on a 5xx: temporary
    (450, "5.1.1 contradictory enhanced code", F),
    (199, "weird", F),  # unknown means temporary
    (600, "out of range", F),
]


@pytest.mark.parametrize(("code", "text", "outcome"), REPLIES)
def test_reply_table(code: int, text: str, outcome: Outcome) -> None:
    reply = parse_reply(code, text)
    assert classify(reply).outcome is outcome
    assert classify(reply).reply == reply


EXCEPTIONS = [
    (aiosmtplib.SMTPRecipientRefused(550, "5.1.1 no such user", "a@b"), B, 550),
    (aiosmtplib.SMTPRecipientRefused(450, "4.2.0 greylisted", "a@b"), F, 450),
    (aiosmtplib.SMTPDataError(554, "5.7.1 spam"), B, 554),
    (aiosmtplib.SMTPSenderRefused(421, "4.7.0 try later", "x@y"), F, 421),
    (aiosmtplib.SMTPServerDisconnected("Connection lost"), F, 451),
    (aiosmtplib.SMTPConnectError("refused"), F, 451),
    (aiosmtplib.SMTPReadTimeoutError("timed out"), F, 451),
    (ConnectionResetError(104, "reset"), F, 451),
    (TimeoutError(), F, 451),
    (ssl.SSLError("handshake"), F, 451),
    (DeliveryFailure(NULL_MX), B, 556),
    (RuntimeError("unexpected"), F, 451),  # unknown means temporary
]


@pytest.mark.parametrize(("exc", "outcome", "code"), EXCEPTIONS)
def test_exception_table(exc: BaseException, outcome: Outcome, code: int) -> None:
    classified = classify(exc)
    assert classified.outcome is outcome
    assert classified.reply.code == code


def test_parse_reply_splits_enhanced_code() -> None:
    assert parse_reply(550, "5.1.1 No such\n user") == SmtpReply(
        code=550, enhanced="5.1.1", text="No such user"
    )
    assert parse_reply(250, "Ok") == SmtpReply(code=250, text="Ok")
    assert parse_reply(250, "2.0.0") == SmtpReply(code=250, enhanced="2.0.0", text="")


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (SmtpReply(code=250, enhanced="2.0.0", text="OK"), None),
        (SmtpReply(code=550, enhanced="5.1.1", text="User unknown"), "userunknown"),
        (SmtpReply(code=552, text="Mailbox size limit exceeded"), "mailboxfull"),
        (SmtpReply(code=421, enhanced="4.7.0", text="[TSS04] unexpected volume"), "badreputation"),
        (NULL_MX, "notaccept"),
        (ConnectionResetError("reset by peer"), "networkerror"),
        (ssl.SSLError("handshake failure"), "securityerror"),
        (RuntimeError("bug"), "systemerror"),
    ],
)
def test_a_failure_has_a_reason_and_a_delivery_none(
    result: SmtpReply | BaseException, reason: str | None
) -> None:
    assert classify(result).reason == reason

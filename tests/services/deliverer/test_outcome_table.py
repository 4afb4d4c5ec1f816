"""The reply classifier pinned whole: every branch of ``services/deliverer/outcome.py``
against an expected table written out here, never derived from the code.

What the deliverer concludes from a reply decides whether mail is lost (counted delivered),
retried or bounced (and its recipient perhaps suppressed), so each row below is a decision
users rely on: the code classes and their edges, an enhanced code agreeing with or
contradicting its reply code, replies without an enhanced code ("450 greylisted" must be
deferred, never delivered), how the enhanced code is split off, the reply recorded for each
kind of error (a TLS error is 4.7.5, not a lost connection), and the synthetic replies that
reach events and DSNs word for word. A change to any of them must change this table too.
"""

from __future__ import annotations

import asyncio
import ssl

import aiosmtplib
import pytest

from services.deliverer.outcome import (
    BAD_RECIPIENT_SYNTAX,
    BAD_SENDER_SYNTAX,
    CONNECTION_LOST,
    DNS_TEMPORARY,
    EIGHTBIT_UNAVAILABLE,
    LOCAL_FAILURE,
    NO_ANSWER,
    NO_MAIL_HOST,
    NO_SUCH_DOMAIN,
    NULL_MX,
    SMTPUTF8_UNAVAILABLE,
    TLS_POLICY_FAILED,
    TLS_UNAVAILABLE,
    DeliveryFailure,
    Outcome,
    classify,
    local_error,
    parse_reply,
)
from shared.wire.records import SmtpReply

D, F, B = Outcome.DELIVERED, Outcome.DEFERRED, Outcome.BOUNCED


def R(code: int, enhanced: str = "", text: str = "") -> SmtpReply:
    """A reply, short enough for a table."""
    return SmtpReply(code=code, enhanced=enhanced, text=text)


# (reply code, enhanced code, outcome): every code class with its edges, each with no
# enhanced code, an agreeing one and each contradicting one.
REPLY_TABLE: list[tuple[int, str, Outcome]] = [
    # below 2xx: unknown, so temporary
    (0, "", F),
    (100, "", F),
    (199, "", F),
    (199, "2.0.0", F),
    # 2xx: delivered when the enhanced code is absent or of class 2
    (200, "", D),
    (250, "", D),
    (250, "2.0.0", D),
    (251, "2.1.5", D),
    (252, "", D),
    (299, "", D),
    (250, "4.0.0", F),  # a 2xx with a temporary enhanced code contradicts itself
    (250, "5.0.0", F),  # ... and with a permanent one too: retried, never lost
    # 3xx ends a command successfully mid-transaction: as 2xx
    (300, "", D),
    (354, "", D),
    (354, "2.0.0", D),
    (399, "", D),
    (354, "4.0.0", F),
    (354, "5.0.0", F),
    # 4xx: deferred, whatever the enhanced code says
    (400, "", F),
    (421, "", F),
    (450, "", F),  # "450 greylisted" without an enhanced code: deferred, never delivered
    (451, "", F),
    (452, "", F),
    (499, "", F),
    (450, "4.2.0", F),
    (421, "4.7.0", F),
    (450, "2.0.0", F),
    (450, "5.1.1", F),  # a permanent enhanced code on a 4xx: the server contradicts itself
    # 5xx: bounced when the enhanced code is absent or of class 5
    (500, "", B),
    (550, "", B),
    (553, "", B),
    (554, "", B),
    (599, "", B),
    (550, "5.1.1", B),
    (552, "5.2.2", B),
    (554, "5.7.1", B),
    (550, "4.2.0", F),  # a temporary enhanced code on a 5xx: deferred
    (550, "2.0.0", F),
    # 6xx and beyond: unknown, so temporary
    (600, "", F),
    (699, "5.0.0", F),
    (999, "", F),
]


@pytest.mark.parametrize(("code", "enhanced", "outcome"), REPLY_TABLE)
def test_reply_table(code: int, enhanced: str, outcome: Outcome) -> None:
    reply = R(code=code, enhanced=enhanced, text="words")
    classified = classify(reply)
    assert classified.outcome is outcome
    assert classified.reply == reply  # a real reply is recorded as it came


# (code, server text, the parsed reply): the enhanced code is split off only when it is the
# first word and well formed (class 2, 4 or 5; one to three digits per part).
PARSE_TABLE: list[tuple[int, str, SmtpReply]] = [
    (250, "2.0.0 OK queued", R(code=250, enhanced="2.0.0", text="OK queued")),
    (250, "2.0.0", R(code=250, enhanced="2.0.0", text="")),
    (250, "Ok: queued as 4XyZ", R(code=250, text="Ok: queued as 4XyZ")),
    (450, "greylisted", R(code=450, text="greylisted")),
    (450, "", R(code=450, text="")),
    (550, "5.1.1 No such\n user", R(code=550, enhanced="5.1.1", text="No such user")),
    (
        450,
        "4.2.0 greylisted\r\n4.2.0 try later",
        R(code=450, enhanced="4.2.0", text="greylisted 4.2.0 try later"),
    ),
    (
        451,
        "  4.7.650   rate  limited ",
        R(code=451, enhanced="4.7.650", text="rate limited"),
    ),
    (550, "5.01.001 padded", R(code=550, enhanced="5.01.001", text="padded")),
    (550, "5.1.1234 four digits", R(code=550, text="5.1.1234 four digits")),
    (550, "5.1 two parts", R(code=550, text="5.1 two parts")),
    (550, "5.1.1x glued", R(code=550, text="5.1.1x glued")),
    (550, "3.1.1 class three", R(code=550, text="3.1.1 class three")),
    (550, "6.1.1 class six", R(code=550, text="6.1.1 class six")),
    (550, "user 5.1.1 later", R(code=550, text="user 5.1.1 later")),
]


@pytest.mark.parametrize(("code", "message", "reply"), PARSE_TABLE)
def test_parse_table(code: int, message: str, reply: SmtpReply) -> None:
    assert parse_reply(code, message) == reply


class CodeAsText(Exception):
    """An error with a reply-like ``code`` that is not an int."""

    code = "550"
    message = "5.1.1 no such user"


class MessageAsBytes(Exception):
    """An error with an int ``code`` and a ``message`` that is not text."""

    code = 550
    message = b"5.1.1 no such user"


# (exception, outcome, the reply recorded for it, word for word).
EXCEPTION_TABLE: list[tuple[BaseException, Outcome, SmtpReply]] = [
    # the server's reply carried by aiosmtplib: classified as that reply
    (
        aiosmtplib.SMTPRecipientRefused(450, "greylisted", "a@b"),
        F,
        R(code=450, text="greylisted"),
    ),
    (
        aiosmtplib.SMTPRecipientRefused(550, "5.1.1 no such user", "a@b"),
        B,
        R(code=550, enhanced="5.1.1", text="no such user"),
    ),
    (
        aiosmtplib.SMTPRecipientRefused(550, "4.2.0 contradiction", "a@b"),
        F,
        R(code=550, enhanced="4.2.0", text="contradiction"),
    ),
    (
        aiosmtplib.SMTPDataError(554, "5.7.1 spam"),
        B,
        R(code=554, enhanced="5.7.1", text="spam"),
    ),
    (
        aiosmtplib.SMTPSenderRefused(421, "4.7.0 try later", "x@y"),
        F,
        R(code=421, enhanced="4.7.0", text="try later"),
    ),
    (aiosmtplib.SMTPResponseException(250, "2.0.0 ok"), D, R(250, "2.0.0", "ok")),
    (aiosmtplib.SMTPResponseException(200, "edge"), D, R(code=200, text="edge")),
    (aiosmtplib.SMTPResponseException(599, "edge"), B, R(code=599, text="edge")),
    # a code outside 200-599, or not an int, or no text: not a reply, a failure of ours
    (
        aiosmtplib.SMTPResponseException(199, "x"),
        F,
        R(451, "4.3.0", "local delivery failure: SMTPResponseException: (199, 'x')"),
    ),
    (
        aiosmtplib.SMTPResponseException(600, "x"),
        F,
        R(451, "4.3.0", "local delivery failure: SMTPResponseException: (600, 'x')"),
    ),
    (CodeAsText(), F, R(451, "4.3.0", "local delivery failure: CodeAsText")),
    (MessageAsBytes(), F, R(451, "4.3.0", "local delivery failure: MessageAsBytes")),
    # TLS errors: 4.7.5, though ssl.SSLError is an OSError (as the ssl module raises them)
    (
        ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"),
        F,
        R(451, "4.7.5", "TLS failed: SSLError: [SSL: WRONG_VERSION_NUMBER] wrong version number"),
    ),
    (
        ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] verify failed"),
        F,
        R(
            451,
            "4.7.5",
            "TLS failed: SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] verify failed",
        ),
    ),
    # network errors and timeouts: 4.4.2
    (
        aiosmtplib.SMTPServerDisconnected("Connection lost"),
        F,
        R(451, "4.4.2", "connection lost: SMTPServerDisconnected: Connection lost"),
    ),
    (
        aiosmtplib.SMTPConnectError("refused"),
        F,
        R(451, "4.4.2", "connection lost: SMTPConnectError: refused"),
    ),
    (
        aiosmtplib.SMTPReadTimeoutError("timed out"),
        F,
        R(451, "4.4.2", "connection lost: SMTPReadTimeoutError: timed out"),
    ),
    (
        ConnectionResetError(104, "reset"),
        F,
        R(451, "4.4.2", "connection lost: ConnectionResetError: [Errno 104] reset"),
    ),
    (TimeoutError(), F, R(451, "4.4.2", "connection lost: TimeoutError")),
    (EOFError("eof"), F, R(451, "4.4.2", "connection lost: EOFError: eof")),
    (OSError("no route"), F, R(451, "4.4.2", "connection lost: OSError: no route")),
    # long error texts are cut to 300 characters, whatever the kind
    (OSError("y" * 400), F, R(451, "4.4.2", ("connection lost: OSError: " + "y" * 400)[:300])),
    (
        ssl.SSLError(1, "z" * 400),
        F,
        R(451, "4.7.5", ("TLS failed: SSLError: " + "z" * 400)[:300]),
    ),
    # anything else: a temporary failure of ours
    (
        RuntimeError("unexpected"),
        F,
        R(451, "4.3.0", "local delivery failure: RuntimeError: unexpected"),
    ),
    (
        asyncio.CancelledError(),
        F,
        R(451, "4.3.0", "local delivery failure: CancelledError"),
    ),
    (
        RuntimeError("x" * 400),
        F,
        R(451, "4.3.0", ("local delivery failure: RuntimeError: " + "x" * 400)[:300]),
    ),
]


@pytest.mark.parametrize(("exc", "outcome", "reply"), EXCEPTION_TABLE)
def test_exception_table(exc: BaseException, outcome: Outcome, reply: SmtpReply) -> None:
    classified = classify(exc)
    assert classified.outcome is outcome
    assert classified.reply == reply


# The synthetic replies, word for word (they reach events, DSNs and the mail log), and what a
# DeliveryFailure carrying each one comes to.
SYNTHETIC_TABLE: list[tuple[SmtpReply, SmtpReply, Outcome]] = [
    (NULL_MX, R(556, "5.1.10", "recipient domain has a null MX (RFC 7505)"), B),
    (NO_SUCH_DOMAIN, R(550, "5.1.2", "recipient domain does not exist"), B),
    (NO_MAIL_HOST, R(550, "5.1.2", "recipient domain has no mail host"), B),
    (DNS_TEMPORARY, R(451, "4.4.3", "DNS lookup failed temporarily"), F),
    (NO_ANSWER, R(451, "4.4.1", "no MX host answered"), F),
    (CONNECTION_LOST, R(451, "4.4.2", "connection lost"), F),
    (TLS_UNAVAILABLE, R(451, "4.7.5", "TLS required but not available"), F),
    (TLS_POLICY_FAILED, R(451, "4.7.5", "TLS policy not met by any MX host"), F),
    (LOCAL_FAILURE, R(451, "4.3.0", "local delivery failure"), F),
    (BAD_RECIPIENT_SYNTAX, R(553, "5.1.3", "bad destination mailbox address syntax"), B),
    (BAD_SENDER_SYNTAX, R(553, "5.1.7", "bad sender mailbox address syntax"), B),
    (
        SMTPUTF8_UNAVAILABLE,
        R(553, "5.6.7", "SMTPUTF8 is required, but was not offered by the host"),
        B,
    ),
    (
        EIGHTBIT_UNAVAILABLE,
        R(
            554,
            "5.6.3",
            "8-bit content, but 8BITMIME was not offered by the host (conversion not supported)",
        ),
        B,
    ),
]


@pytest.mark.parametrize(("constant", "expected", "outcome"), SYNTHETIC_TABLE)
def test_synthetic_replies(constant: SmtpReply, expected: SmtpReply, outcome: Outcome) -> None:
    assert constant == expected
    classified = classify(DeliveryFailure(constant, detail="what happened"))
    assert classified.outcome is outcome
    assert classified.reply == expected  # the named reply, not the detail


def test_delivery_failure_says_its_detail_or_its_reply() -> None:
    assert str(DeliveryFailure(NO_ANSWER, "mx1 refused")) == "mx1 refused"
    assert str(DeliveryFailure(NO_ANSWER)) == "451 4.4.1 no MX host answered"


LOCAL_ERROR_TABLE: list[tuple[BaseException, SmtpReply]] = [
    (RuntimeError("boom"), R(451, "4.3.0", "local delivery failure: RuntimeError: boom")),
    (KeyError("k"), R(451, "4.3.0", "local delivery failure: KeyError: 'k'")),
    (
        ValueError("v" * 300),
        R(451, "4.3.0", "local delivery failure: " + ("ValueError: " + "v" * 300)[:200]),
    ),
]


@pytest.mark.parametrize(("exc", "reply"), LOCAL_ERROR_TABLE)
def test_local_error_table(exc: BaseException, reply: SmtpReply) -> None:
    assert local_error(exc) == reply
    assert classify(reply).outcome is F

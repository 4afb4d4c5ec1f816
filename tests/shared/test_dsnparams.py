"""RFC 3461 parameter grammar and xtext (pure logic)."""

from __future__ import annotations

import pytest

from shared import dsnparams
from shared.dsnparams import DsnParamError
from shared.wire.records import RecipientDsn


@pytest.mark.parametrize(
    ("text", "xtext"),
    [
        ("bob@example.org", "bob@example.org"),
        ("a+b=c@example.org", "a+2Bb+3Dc@example.org"),
        ("with space", "with+20space"),
        ("", ""),
    ],
)
def test_xtext_round_trip(text: str, xtext: str) -> None:
    assert dsnparams.xtext_encode(text) == xtext
    assert dsnparams.xtext_decode(xtext) == text


@pytest.mark.parametrize("bad", ["a+2b", "a+", "a+G0", "a=b", "a b", "é"])
def test_malformed_xtext_is_refused(bad: str) -> None:
    with pytest.raises(DsnParamError):
        dsnparams.xtext_decode(bad)


def test_notify() -> None:
    assert dsnparams.parse_notify("never") == ("NEVER",)
    assert dsnparams.parse_notify("SUCCESS,delay") == ("SUCCESS", "DELAY")
    for bad in ("", "NEVER,SUCCESS", "SUCCESS,SUCCESS", "ALWAYS", "SUCCESS,,FAILURE"):
        with pytest.raises(DsnParamError):
            dsnparams.parse_notify(bad)


def test_ret_envid_orcpt() -> None:
    assert dsnparams.parse_ret("hdrs") == "HDRS"
    with pytest.raises(DsnParamError):
        dsnparams.parse_ret("BODY")
    assert dsnparams.parse_envid("QQ+2B314") == "QQ+314"
    with pytest.raises(DsnParamError):
        dsnparams.parse_envid("x" * 101)
    with pytest.raises(DsnParamError):
        dsnparams.parse_envid("+00")  # decodes to a control character
    assert dsnparams.parse_orcpt("rfc822;Bob+2Bx@Example.org") == "rfc822;Bob+x@Example.org"
    for bad in ("bob@example.org", ";bob@example.org", "rfc822;", "rf c;x", "rfc822;" + "a" * 500):
        with pytest.raises(DsnParamError):
            dsnparams.parse_orcpt(bad)


def test_split_keeps_values_as_sent_and_the_rest() -> None:
    found, rest = dsnparams.split_params(
        "notify=SUCCESS ORCPT=rfc822;Bob@X.org SIZE=10", dsnparams.RCPT_KEYWORDS
    )
    assert found == [("NOTIFY", "SUCCESS"), ("ORCPT", "rfc822;Bob@X.org")]
    assert rest == "SIZE=10"
    with pytest.raises(DsnParamError):
        dsnparams.rcpt_params([("NOTIFY", "SUCCESS"), ("NOTIFY", "DELAY")])
    assert dsnparams.rcpt_params([]) is None


def test_wire_form_re_encodes() -> None:
    dsn = RecipientDsn(notify=("SUCCESS", "FAILURE"), orcpt="rfc822;a+b@example.org")
    assert dsnparams.wire_rcpt_params(dsn) == [
        b"NOTIFY=SUCCESS,FAILURE",
        b"ORCPT=rfc822;a+2Bb@example.org",
    ]
    assert dsnparams.wire_mail_params("HDRS", "id 1") == [b"RET=HDRS", b"ENVID=id+201"]
    assert dsnparams.wire_mail_params("", "") == []


def test_absent_notify_means_failure_only() -> None:
    assert dsnparams.notifies((), dsnparams.FAILURE)
    assert not dsnparams.notifies((), dsnparams.DELAY)
    assert not dsnparams.notifies(("NEVER",), dsnparams.FAILURE)
    assert dsnparams.notifies(("SUCCESS",), dsnparams.SUCCESS)


def test_xtext_keeps_the_whole_printable_range_and_encodes_utf8_bytes() -> None:
    # xchar is "!" to "~" inclusive (RFC 3461 4): both ends travel as they are.
    assert dsnparams.xtext_encode("!~") == "!~"
    assert dsnparams.xtext_decode("!~") == "!~"
    assert dsnparams.xtext_encode("é") == "+C3+A9"


def test_envid_and_orcpt_take_exactly_their_longest_values() -> None:
    # RFC 3461 4.4: ENVID at most 100 characters; 4.2: ORCPT at most 500.
    assert dsnparams.parse_envid("e" * dsnparams.MAX_ENVID) == "e" * 100
    orcpt = "rfc822;" + "a" * (500 - len("rfc822;"))
    assert dsnparams.parse_orcpt(orcpt) == orcpt
    with pytest.raises(DsnParamError):
        dsnparams.parse_orcpt(orcpt + "a")


def test_the_command_room_fits_the_longest_parameters() -> None:
    # RFC 3461 4: a server must take the longest values; ingest widens MAIL's and RCPT's
    # line limits by this room, so the longest legal parameters must fit in it.
    longest_mail = " RET=HDRS ENVID=" + "+2B" * 33 + "x"
    found, rest = dsnparams.split_params(longest_mail, dsnparams.MAIL_KEYWORDS)
    assert rest == "" and dsnparams.mail_params(found) == ("HDRS", "+" * 33 + "x")
    assert len(longest_mail) <= dsnparams.MAIL_ROOM
    longest_rcpt = " NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;" + "a" * 493
    found, rest = dsnparams.split_params(longest_rcpt, dsnparams.RCPT_KEYWORDS)
    assert rest == "" and dsnparams.rcpt_params(found) is not None
    assert len(longest_rcpt) <= dsnparams.RCPT_ROOM


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        ([], ("", "")),
        ([("RET", "full")], ("FULL", "")),
        ([("ENVID", "a+2Bb")], ("", "a+b")),
        ([("ENVID", "id"), ("RET", "HDRS")], ("HDRS", "id")),
    ],
)
def test_mail_params(found: list[tuple[str, str]], expected: tuple[str, str]) -> None:
    assert dsnparams.mail_params(found) == expected


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        ([("NOTIFY", "never")], RecipientDsn(notify=("NEVER",))),
        ([("ORCPT", "rfc822;b+2B1@x.org")], RecipientDsn(orcpt="rfc822;b+1@x.org")),
        (
            [("ORCPT", "rfc822;b@x.org"), ("NOTIFY", "DELAY,FAILURE")],
            RecipientDsn(notify=("DELAY", "FAILURE"), orcpt="rfc822;b@x.org"),
        ),
    ],
)
def test_rcpt_params(found: list[tuple[str, str]], expected: RecipientDsn) -> None:
    assert dsnparams.rcpt_params(found) == expected


def test_a_parameter_given_twice_is_refused() -> None:
    # RFC 5321 4.1.1.11: each parameter at most once per command.
    with pytest.raises(DsnParamError):
        dsnparams.mail_params([("RET", "FULL"), ("RET", "HDRS")])
    with pytest.raises(DsnParamError):
        dsnparams.rcpt_params([("ORCPT", "rfc822;a@x.org"), ("ORCPT", "rfc822;b@x.org")])


def test_wire_form_sends_only_the_parameters_given() -> None:
    assert dsnparams.wire_rcpt_params(None) == []
    assert dsnparams.wire_rcpt_params(RecipientDsn(notify=("NEVER",))) == [b"NOTIFY=NEVER"]
    assert dsnparams.wire_rcpt_params(RecipientDsn(orcpt="rfc822;a b@x.org")) == [
        b"ORCPT=rfc822;a+20b@x.org"
    ]
    assert dsnparams.wire_mail_params("FULL", "") == [b"RET=FULL"]
    assert dsnparams.wire_mail_params("", "e") == [b"ENVID=e"]


def test_a_decoded_control_character_is_refused() -> None:
    # The decoded ORCPT and ENVID go into the DSN's fields (RFC 3464 2.2.1, 2.3.1): a CR LF
    # hidden in xtext would start a field of the sender's choosing there.
    with pytest.raises(DsnParamError):
        dsnparams.parse_orcpt("rfc822;a@x.org+0D+0AX-Evil:+201")
    with pytest.raises(DsnParamError):
        dsnparams.parse_envid("id+0D+0AX-Evil:+201")

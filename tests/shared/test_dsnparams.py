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

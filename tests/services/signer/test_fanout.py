"""Fan-out and envelopes: one Delivery per recipient with VERP, per domain without."""

from __future__ import annotations

import msgspec
import pytest

from services.signer.fanout import Envelope, deliveries, group_by_domain, return_path
from shared.errors import ForgedToken
from shared.wire.records import ClientInfo, RecipientDsn, Submission
from shared.wire.tokens import parse_verp
from tests.services.signer.conftest import SECRET

SUBMISSION = Submission(
    id="0123456789abcdef0123456789abcdef",
    received_at=1_000.0,
    client=ClientInfo(ip="127.0.0.1", auth_user="app"),
    mail_from="sender@example.test",
    rcpt_to=("a@one.test", "B@ONE.test", "c@two.test", "a@ONE.test"),
    data=b"From: sender@example.test\r\n\r\nhi\r\n",
    tags={"campaign": "x"},
    smtputf8=True,
)


def envelope(verp: bool) -> Envelope:
    return Envelope(
        verp=verp,
        verp_local="b",
        bounce_domain="bounces.example.test",
        secret=SECRET,
        max_message_age=3 * 86400,
        first_attempt_delay=5,
    )


def test_group_by_domain_dedupes_case_insensitively() -> None:
    assert group_by_domain(SUBMISSION.rcpt_to) == {
        "one.test": ("a@one.test", "B@ONE.test"),
        "two.test": ("c@two.test",),
    }


def test_verp_on_one_delivery_per_recipient_with_its_return_path() -> None:
    made = deliveries(
        SUBMISSION, SUBMISSION.rcpt_to, b"signed", envelope(True), 2_000.0, per_recipient=False
    )
    assert [(d.domain, d.rcpt_to) for d in made] == [
        ("one.test", ("a@one.test",)),
        ("one.test", ("B@ONE.test",)),
        ("two.test", ("c@two.test",)),
    ]
    for delivery in made:
        token = parse_verp(delivery.mail_from, SECRET)
        assert token.message_id == SUBMISSION.id
        assert token.recipient.lower() == delivery.rcpt_to[0].lower()
        assert delivery.mail_from.endswith("@bounces.example.test")
        assert delivery.sender == "sender@example.test"
        assert delivery.expires_at == 1_000.0 + 3 * 86400
        assert delivery.not_before == 2_005.0
        assert delivery.submitted_at == 1_000.0
        assert delivery.smtputf8 and delivery.tags == {"campaign": "x"}
        assert delivery.data == b"signed"
    assert len({d.delivery_id for d in made}) == 3


def test_verp_off_one_delivery_per_domain_with_the_original_sender() -> None:
    made = deliveries(
        SUBMISSION, SUBMISSION.rcpt_to, b"signed", envelope(False), 2_000.0, per_recipient=False
    )
    assert [(d.domain, d.rcpt_to, d.mail_from) for d in made] == [
        ("one.test", ("a@one.test", "B@ONE.test"), "sender@example.test"),
        ("two.test", ("c@two.test",), "sender@example.test"),
    ]


def test_per_recipient_copies_without_verp_keep_the_sender() -> None:
    made = deliveries(
        SUBMISSION,
        ["a@one.test", "b@one.test"],
        b"x",
        envelope(False),
        0.0,
        per_recipient=True,
        bulk=True,
    )
    assert [(d.rcpt_to, d.mail_from, d.bulk) for d in made] == [
        (("a@one.test",), "sender@example.test", True),
        (("b@one.test",), "sender@example.test", True),
    ]


def test_null_reverse_path_is_never_verp_encoded() -> None:
    dsn = Submission(**{**_fields(SUBMISSION), "mail_from": ""})
    assert return_path(dsn, "a@one.test", envelope(True)) == ""


def test_forged_or_altered_verp_is_rejected() -> None:
    address = return_path(SUBMISSION, "a@one.test", envelope(True))
    with pytest.raises(ForgedToken):
        parse_verp(address, b"another-secret-of-16+bytes")
    with pytest.raises(ForgedToken):
        parse_verp(address.replace("a=one.test", "z=one.test"), SECRET)
    with pytest.raises(ForgedToken):
        parse_verp("b+notatoken-a=one.test@bounces.example.test", SECRET)


def _fields(submission: Submission) -> dict[str, object]:
    return {name: getattr(submission, name) for name in submission.__struct_fields__}


@pytest.mark.parametrize("verp", [True, False])
def test_each_copy_carries_the_dsn_request_of_its_own_recipients(verp: bool) -> None:
    bob = RecipientDsn(notify=("SUCCESS",), orcpt="rfc822;Bob@one.test")
    carol = RecipientDsn(notify=("NEVER",))
    submission = msgspec.structs.replace(
        SUBMISSION,
        dsn_ret="HDRS",
        dsn_envid="E1",
        dsn={"B@ONE.test": bob, "c@two.test": carol},
    )
    made = deliveries(
        submission, submission.rcpt_to, b"signed", envelope(verp), 2_000.0, per_recipient=False
    )
    for delivery in made:
        assert (delivery.dsn_ret, delivery.dsn_envid) == ("HDRS", "E1")
        expected = {r: submission.dsn[r] for r in delivery.rcpt_to if r in submission.dsn}
        assert delivery.dsn == expected
    assert {r: d for copy in made for r, d in copy.dsn.items()} == submission.dsn

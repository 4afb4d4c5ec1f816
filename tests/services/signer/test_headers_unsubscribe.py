"""Header reading/prepending and the bulk / List-Unsubscribe decisions."""

from __future__ import annotations

import pytest

from services.signer.config import BulkRule, SignerConfig
from services.signer.headers import field_values, from_domain, has_field, prepend
from services.signer.unsubscribe import (
    ONE_CLICK,
    bulk_reason,
    is_bulk,
    unsubscribe_fields,
    wants_headers,
)
from shared.wire.records import ClientInfo, Submission
from shared.wire.tokens import parse_unsubscribe_token
from tests.services.signer.conftest import SECRET

MESSAGE = (
    b"Received: x\r\n"
    b"From: =?utf-8?q?Jos=C3=A9?= <Jose@Example.TEST>\r\n"
    b"Subject: a\r\n folded\r\n"
    b"\r\n"
    b"From: not-a-header@body.test\r\n"
)


def submission(
    tags: dict[str, str] | None = None, user: str = "app", data: bytes = MESSAGE
) -> Submission:
    return Submission(
        id="0123456789abcdef0123456789abcdef",
        received_at=0.0,
        client=ClientInfo(ip="127.0.0.1", auth_user=user),
        mail_from="s@example.test",
        rcpt_to=("r@dest.test",),
        data=data,
        tags=tags or {},
    )


def test_from_domain_reads_the_header_not_the_body() -> None:
    assert from_domain(MESSAGE) == "example.test"
    assert from_domain("From: José <josé@exämple.test>\r\n\r\n".encode()) == "exämple.test"
    assert from_domain(b"To: x@y.test\r\n\r\nFrom: a@b.test\r\n") == ""


def test_field_values_unfold() -> None:
    assert field_values(MESSAGE, "subject") == ["a folded"]
    assert has_field(MESSAGE, "RECEIVED")
    assert not has_field(MESSAGE, "List-Unsubscribe")


def test_prepend_adds_crlf_fields_on_top() -> None:
    assert prepend(b"A: 1\r\n\r\n", [("B", "2"), ("C", "3")]) == b"B: 2\r\nC: 3\r\nA: 1\r\n\r\n"
    assert prepend(MESSAGE, []) == MESSAGE


@pytest.mark.parametrize(
    ("tags", "rules", "bulk"),
    [
        ({}, (), False),
        ({"bulk": "yes"}, (), True),
        ({"X-Postline-Bulk": "1"}, (), True),
        ({"bulk": "no"}, (), False),
        ({"category": "newsletter"}, (BulkRule(tag="category", value="Newsletter"),), True),
        ({"category": "receipt"}, (BulkRule(tag="category", value="newsletter"),), False),
        ({}, (BulkRule(user="app"),), True),
        ({}, (BulkRule(user="other"),), False),
        ({}, (BulkRule(sender_domain="EXAMPLE.test"),), True),
        ({}, (BulkRule(user="app", sender_domain="other.test"),), False),
    ],
)
def test_is_bulk(tags: dict[str, str], rules: tuple[BulkRule, ...], bulk: bool) -> None:
    assert is_bulk(submission(tags), "example.test", rules) is bulk


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (b"", ""),
        (b"Precedence: bulk\r\n", "precedence"),
        (b"PRECEDENCE:  List (a mailing list)\r\n", "precedence"),
        (b"Precedence: junk\r\n", "precedence"),
        (b"Precedence: first-class\r\n", ""),
        (b"Precedence:\r\n", ""),
        (b"X-Precedence: bulk\r\n", ""),
        (b"List-Unsubscribe: <https://example.test/u/1>\r\n", "list-unsubscribe"),
        (b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", ""),
        (b"List-Id: <news.example.test>\r\n", ""),
    ],
)
def test_a_senders_own_fields_make_it_bulk(fields: bytes, reason: str) -> None:
    sub = submission(data=fields + MESSAGE)
    assert bulk_reason(sub, "example.test", ()) == reason
    # In the body they mean nothing.
    assert bulk_reason(submission(data=MESSAGE + fields), "example.test", ()) == ""


def test_a_bulk_tenant_makes_every_message_bulk_and_comes_first() -> None:
    assert bulk_reason(submission(), "example.test", (), tenant_bulk=True) == "tenant"
    tagged = submission({"bulk": "yes"}, data=b"Precedence: bulk\r\n" + MESSAGE)
    assert bulk_reason(tagged, "example.test", ()) == "tag"
    assert is_bulk(submission(), "example.test", (), tenant_bulk=True)


def test_a_rule_needs_a_condition() -> None:
    with pytest.raises(ValueError, match="at least one"):
        BulkRule()


def test_unsubscribe_fields_carry_a_verifiable_token() -> None:
    config = SignerConfig(
        unsubscribe_url="https://mail.example.net/unsubscribe/", bounce_domain="bounces.example.net"
    )
    fields = dict(unsubscribe_fields(config, SECRET, "r@dest.test", "example.test", "m1"))
    assert fields["List-Unsubscribe-Post"] == ONE_CLICK
    https, mailto = (part.strip().strip("<>") for part in fields["List-Unsubscribe"].split(","))
    assert https.startswith("https://mail.example.net/unsubscribe/")
    token = https.rsplit("/", 1)[1]
    assert mailto == f"mailto:unsubscribe+{token}@bounces.example.net"
    parsed = parse_unsubscribe_token(SECRET, token)
    assert (parsed.recipient, parsed.scope, parsed.message_id) == (
        "r@dest.test",
        "example.test",
        "m1",
    )


def test_wants_headers_only_when_configured_and_absent() -> None:
    on = SignerConfig(unsubscribe_url="https://u.example/")
    assert wants_headers(on, MESSAGE)
    assert not wants_headers(SignerConfig(), MESSAGE)
    assert not wants_headers(on, b"List-Unsubscribe: <mailto:x@y>\r\n" + MESSAGE)


def test_unsubscribe_url_must_be_https() -> None:
    with pytest.raises(ValueError, match="https"):
        SignerConfig(unsubscribe_url="http://u.example/")

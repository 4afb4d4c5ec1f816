"""RFC 8461 syntax: the TXT record (3.1), the policy file (3.2) and MX matching (4.1)."""

from __future__ import annotations

import pytest

from shared.mtasts import (
    MAX_MAX_AGE,
    PolicyInvalid,
    mx_matches,
    parse_policy,
    parse_txt,
    policy_host,
    txt_name,
    txt_policy_id,
)

POLICY = (
    "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
    "max_age: 604800\r\n"
)


def test_policy_with_crlf_lines() -> None:
    policy = parse_policy(POLICY)
    assert policy.mode == "enforce"
    assert policy.max_age == 604800
    assert policy.mx == ("mail.example.com", "*.example.net")
    assert policy.lines == (
        "version: STSv1",
        "mode: enforce",
        "mx: mail.example.com",
        "mx: *.example.net",
        "max_age: 604800",
    )


def test_policy_with_lf_lines_whitespace_and_unknown_keys() -> None:
    text = (
        "version:STSv1\nmode:   testing  \nfuture_key: anything goes\nmx: MX.Example.COM\n"
        "max_age: 86400"
    )
    policy = parse_policy(text)
    assert (policy.mode, policy.max_age, policy.mx) == ("testing", 86400, ("mx.example.com",))
    assert "future_key: anything goes" in policy.lines


def test_mode_none_needs_no_mx() -> None:
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 86400\n").mx == ()


def test_first_of_a_repeated_key_counts() -> None:
    policy = parse_policy("version: STSv1\nmode: testing\nmode: enforce\nmx: a.b\nmax_age: 1\n")
    assert policy.mode == "testing"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("mode: enforce\nmx: a.b\nmax_age: 1\n", "version"),
        ("version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n", "version"),
        ("version: STSv1\nmode: Enforce\nmx: a.b\nmax_age: 1\n", "mode"),
        ("version: STSv1\nmx: a.b\nmax_age: 1\n", "mode"),
        ("version: STSv1\nmode: enforce\nmx: a.b\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 1d\n", "max_age"),
        (f"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: {MAX_MAX_AGE + 1}\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmax_age: 86400\n", "without any mx"),
        ("version: STSv1\nmode: enforce\nmx: *.*.b\nmax_age: 1\n", "mx pattern"),
        ("version: STSv1\nmode: enforce\nmx: a.*.b\nmax_age: 1\n", "mx pattern"),
        ("version: STSv1\nmode: enforce\nmx: a b\nmax_age: 1\n", "mx pattern"),
        ("version: STSv1\nmode enforce\nmx: a.b\nmax_age: 1\n", "key: value"),
        ("<html>not a policy</html>", "key: value"),
    ],
)
def test_invalid_policies_say_why(text: str, why: str) -> None:
    with pytest.raises(PolicyInvalid, match=why):
        parse_policy(text)


def test_max_age_at_the_limit_is_valid() -> None:
    text = f"version: STSv1\nmode: testing\nmx: a.b\nmax_age: {MAX_MAX_AGE}\n"
    assert parse_policy(text).max_age == MAX_MAX_AGE


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("mail.example.com", "mail.example.com", True),
        ("mail.example.com", "MAIL.example.com.", True),
        ("mail.example.com", "mail2.example.com", False),
        ("*.example.com", "mx1.example.com", True),
        ("*.example.com", "MX1.EXAMPLE.COM.", True),
        ("*.example.com", "example.com", False),  # the wildcard is one label, not zero
        ("*.example.com", "a.b.example.com", False),  # nor two
        ("*.example.com", "mx1.example.com.evil.test", False),
        ("*.example.com", ".example.com", False),
    ],
)
def test_mx_matching(pattern: str, host: str, matches: bool) -> None:
    assert mx_matches(pattern, host) is matches
    policy = parse_policy(f"version: STSv1\nmode: enforce\nmx: {pattern}\nmax_age: 1\n")
    assert policy.matches(host) is matches


@pytest.mark.parametrize(
    ("records", "policy_id"),
    [
        (["v=STSv1; id=20160831085700Z"], "20160831085700Z"),
        (["v=STSv1;id=abc;"], "abc"),
        (["v=STSv1 ; id=abc ; ext=val.ue"], "abc"),
        (["v=spf1 -all", "v=STSv1; id=abc"], "abc"),  # other records are discarded
        (["v=STSv1; id=abc", "v=STSv1; id=def"], None),  # two: none valid (3.1)
        (["v=STSv1; id=abc", "v=STSv1; id=abc"], None),
        ([], None),
        (["v=STSv1"], None),  # no id
        (["v=STSv1; id="], None),
        (["v=STSv1; id=" + "a" * 33], None),  # 1-32 characters
        (["v=STSv1; id=a-b"], None),  # letters and digits only
        (["v=stsv1; id=abc"], None),  # case-sensitive
        (["v=STSv10; id=abc"], None),
        (["v=STSv1; id=abc; bad field"], None),
        (["id=abc; v=STSv1"], None),  # the version comes first
    ],
)
def test_txt_records(records: list[str], policy_id: str | None) -> None:
    assert txt_policy_id(records) == policy_id


def test_txt_record_first_id_counts_and_bad_record_says_why() -> None:
    assert parse_txt("v=STSv1; id=one; id=two") == "one"
    with pytest.raises(PolicyInvalid, match="no id"):
        parse_txt("v=STSv1; x=y")


def test_names() -> None:
    assert txt_name("Example.COM.") == "_mta-sts.example.com"
    assert policy_host("Example.COM.") == "mta-sts.example.com"


def test_max_age_limit_is_rfc_8461s_year() -> None:
    # RFC 8461 3.2: max_age at most 31557600 seconds.
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 31557600\n").max_age == 31557600
    with pytest.raises(PolicyInvalid, match="more than"):
        parse_policy("version: STSv1\nmode: none\nmax_age: 31557601\n")


def test_max_age_is_at_most_ten_digits() -> None:
    # RFC 8461 3.2: sts-policy-max-age-value = 1*10DIGIT (leading zeros included).
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 0000086400\n").max_age == 86400
    with pytest.raises(PolicyInvalid, match="not a number"):
        parse_policy("version: STSv1\nmode: none\nmax_age: 00000086400\n")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        # A line that is a bare word is no "key: value" (RFC 8461 3.2), not an unknown key.
        ("version: STSv1\nmode: none\nmax_age: 1\nextra\n", "line 4 is not 'key: value'"),
        # A key must be a field name: letters, digits, "_", "-", "." (RFC 8461 3.2).
        ("version: STSv1\nmode: none\nmax age: 1\n", "line 3 is not 'key: value'"),
        ("version: STSv1\n mode: none\nmax_age: 1\n", "line 2 is not 'key: value'"),
        ("version: STSv1\nmode: enforce\nmx: a..b\nmax_age: 1\n", "line 3: malformed mx"),
    ],
)
def test_bad_lines_are_named_by_their_number(text: str, why: str) -> None:
    with pytest.raises(PolicyInvalid, match=why):
        parse_policy(text)


def test_a_bad_line_is_quoted_only_in_part() -> None:
    # A server that answers with an HTML page or a binary does not flood the log or
    # `postline domain check` with it: the first 80 characters are quoted.
    with pytest.raises(PolicyInvalid) as raised:
        parse_policy("x" * 200)
    assert str(raised.value) == f"line 1 is not 'key: value': {'x' * 80!r}"


def test_txt_records_not_starting_with_v_stsv1_and_a_delimiter_are_discarded() -> None:
    # RFC 8461 3.1: such records are discarded before counting, so a future version's
    # record beside ours leaves ours in force.
    assert txt_policy_id(["v=STSv10; id=new", "v=STSv1; id=abc"]) == "abc"
    assert txt_policy_id(["v=STSv1", "v=STSv1; id=abc"]) == "abc"


@pytest.mark.parametrize(
    ("record", "why"),
    [
        # What `postline domain check` prints for the one record it finds.
        ("v=STSv10; id=abc", "does not start with v=STSv1"),
        ("v=STSv1;", "no id"),
        ("v=STSv1; id=a-b", "not 1-32 letters or digits"),
        ("v=STSv1; id=abc; id=a-b", "not 1-32 letters or digits"),
        ("v=STSv1; id=abc; =x", "malformed field"),
    ],
)
def test_a_bad_txt_record_says_why(record: str, why: str) -> None:
    with pytest.raises(PolicyInvalid, match=why):
        parse_txt(record)

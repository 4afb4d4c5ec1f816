"""The RFC 5321 Path grammar (shared/address.py), as a table of real arguments."""

from __future__ import annotations

import pytest

from shared.address import AddressError, Path, parse_path

VALID: list[tuple[str, Path]] = [
    ("<bob@dest.test>", Path("bob@dest.test", "")),
    ("<bob@dest.test> SIZE=100 BODY=8BITMIME", Path("bob@dest.test", "SIZE=100 BODY=8BITMIME")),
    ("bob@dest.test", Path("bob@dest.test", "")),  # no brackets: Postfix accepts it too
    ("<>", Path("", "")),
    ("<> SIZE=10", Path("", "SIZE=10")),
    ('<"john smith"@example.com>', Path('"john smith"@example.com', "")),
    ('<"a\\"b"@example.com>', Path('"a\\"b"@example.com', "")),
    ('<"a>b"@example.com>', Path('"a>b"@example.com', "")),
    ('<"john"@example.com>', Path("john@example.com", "")),  # quoting not needed: dropped
    ("<first.last+tag@sub.example.com>", Path("first.last+tag@sub.example.com", "")),
    ("<!#$%&'*+-/=?^_`{|}~@example.com>", Path("!#$%&'*+-/=?^_`{|}~@example.com", "")),
    ("<@relay.example,@other.example:bob@dest.test>", Path("bob@dest.test", "")),
    ("<@other.example:app@bench.example>", Path("app@bench.example", "")),
    ("<user@[192.0.2.1]>", Path("user@[192.0.2.1]", "")),
    ("<user@[IPv6:2001:db8::1]>", Path("user@[IPv6:2001:db8::1]", "")),
    ("<用户@例子.广告>", Path("用户@例子.广告", "")),  # RFC 6531; SMTPUTF8 is the policy's
    ("<jörg@bücher.example>", Path("jörg@bücher.example", "")),
    ("<" + "a" * 64 + "@example.com>", Path("a" * 64 + "@example.com", "")),
]

INVALID: list[tuple[str, str]] = [
    ("<nul\x00x@d0.example>", "NUL"),
    ("<sp ace@example.com>", "space outside quotes"),
    ("<tab\tx@example.com>", "control character"),
    ("<a\x7f@example.com>", "DEL"),
    ('<"a\x00b"@example.com>', "NUL in a quoted string"),
    ('<"a\\\x01"@example.com>', "quoted pair of a control character"),
    ("<bob>", "no domain (Postmaster without domain is not served either)"),
    ("<Postmaster>", "no local mailboxes"),
    ("<ceo@other.example@bench.example>", "two @"),
    ("<.bob@example.com>", "leading dot"),
    ("<bob.@example.com>", "trailing dot"),
    ("<bo..b@example.com>", "double dot"),
    ("<bob@-example.com>", "label starts with a hyphen"),
    ("<bob@example-.com>", "label ends with a hyphen"),
    ("<bob@example..com>", "empty label"),
    ("<bob@>", "empty domain"),
    ("<@example.com>", "empty local part"),
    ("<bob@exa_mple.com>", "underscore in domain"),
    ("<bob@[300.1.1.1]>", "bad IPv4 literal"),
    ("<bob@[IPv6:zz::1]>", "bad IPv6 literal"),
    ("<bob@[tag:content]>", "general address literal"),
    ("<bob@example.com", "unclosed bracket"),
    ("<bob@example.com>x", "text glued after the path"),
    ("<<bob@example.com>>", "nested brackets"),
    ("<" + "a" * 65 + "@example.com>", "local part over 64 octets"),
    ("<bob@" + ".".join(["a" * 63] * 4) + ">", "path over 256 octets"),
    ("<bob@" + "a" * 64 + ".com>", "label over 63 octets"),
    ("<bob@ex\udcffample.com>", "invalid UTF-8 (surrogate escape)"),
    ("<bob\u0085@example.com>", "C1 control"),
]


@pytest.mark.parametrize(("arg", "expected"), VALID)
def test_valid_paths(arg: str, expected: Path) -> None:
    assert parse_path(arg) == expected


@pytest.mark.parametrize(("arg", "why"), INVALID)
def test_invalid_paths(arg: str, why: str) -> None:
    with pytest.raises(AddressError):
        parse_path(arg)

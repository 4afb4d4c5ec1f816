"""The code finders of ``report.py`` equal their plain regular expressions."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.bouncer.report import REPLY_RE, STATUS_RE, find_reply_code, find_status

# Texts made of what the patterns care about: codes, digits, dots, separators, letters.
_PIECES = ["550", "451", "250", "5.1.1", "4.2.2", "2.0.0", "1", "٣", ".", " ", "-", "#", "192"]
_TEXTS = st.lists(st.sampled_from([*_PIECES, "(", ")", "a", "_", "\n", "555-0100"])).map("".join)


def _plain_status(text: str) -> str:
    for match in STATUS_RE.finditer(text):
        if match.group(1) != "2":
            return match.group(0)
    return ""


def _plain_reply_code(text: str) -> int:
    for match in REPLY_RE.finditer(text):
        if int(match.group(1)) >= 400:
            return int(match.group(1))
    return 0


@settings(max_examples=1000, deadline=None)
@given(_TEXTS)
def test_the_finders_equal_the_full_patterns(text: str) -> None:
    assert find_status(text) == _plain_status(text)
    assert find_reply_code(text) == _plain_reply_code(text)


def test_the_finders_on_written_cases() -> None:
    assert find_status("smtp; 550 5.1.1 <a@b>: unknown") == "5.1.1"
    assert find_status("version 15.1.1 then 4.2.2") == "4.2.2"
    assert find_status("550.5.1.1 x") == "5.1.1"  # right after a reply code's dot
    assert find_status("v1.4.2.1.1 2.0.0") == ""  # within a dotted version, not a code
    assert find_status("4.3.2.1 does not like recipient. 5.7.1") == "5.7.1"  # qmail's IP
    assert find_status("host mx[192.5.7.1] said: 550 5.1.1 x") == "5.1.1"
    assert find_status("a5.1.1 2.0.0") == ""
    assert find_reply_code("1.550 x 550-5.1.1 y") == 550
    assert find_reply_code("2550 250 ok 451 later") == 451

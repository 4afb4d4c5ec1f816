"""The substring tests before the phrase scans never change what a scan finds."""

from __future__ import annotations

import re

import pytest

from services.bouncer import textphrases as phrases

TEXTS = [
    "the mail system will continue to retry for 5 days",
    "delivery has been delayed; this is only a warning",
    "i'm not going to try again; this message has been in the queue too long.",
    "retry timeout exceeded",
    "retry timeout not reached for any host",
    "the server will attempt to resend the message",
    "the postmaster will attempt to contact the recipient",
    "message could not be delivered (permanent failure)",
    "配信を中止しました",
    "一時的なエラーのため再送を試みます",
    "遅延",
    "warning: could not send message for past 4 hours",
    "no action is required on your part",
    "hello, how are you",
    "",
    "the following addresses had permanent fatal errors",
    "delivery to the following recipient failed permanently:",
    "your message could not be delivered to a@b.example",
    "以下のアドレスへの送信ができませんでした",
    "宛先\uff1a a@b.example",
    "please contact <postmaster@relay.example> for assistance",
    "send an e-mail to help@isp.example",
    "not accepting mail from <list@example.org>",
    "<postmaster@isp.example> までご連絡ください",
    "from: a@b.example",
]


@pytest.mark.parametrize(
    "name",
    ["GAVE_UP", "WILL_RETRY", "TEMPORARY", "TRIGGERS", "CONTACT", "SENDER", "CONTACT_BEFORE"],
)
def test_a_phrase_prefilter_never_changes_a_match(name: str) -> None:
    pattern: re.Pattern[str] = getattr(phrases, name)
    words = phrases.words_of(pattern)
    assert words  # every alternative has a word: the prefilter is used
    for text in TEXTS:
        assert phrases._found(pattern, words, text) is (pattern.search(text) is not None), text
    assert any(pattern.search(text) for text in TEXTS)  # the texts do exercise it


def test_the_words_of_a_pattern() -> None:
    # "(?:" is read as a group (required_options alone would read ":contact").
    assert phrases.CONTACT_WORDS == (
        "contact",
        "write to",
        "send ",
        "reply to",
        "forward ",
        "question",
        "assistance",
    )
    assert phrases.words_of(re.compile("ab|c+d")) is None  # "c+d" has no word
    assert phrases.words_of(re.compile("(?<!not )listed")) is None  # a lookaround
    # A class is one character: its "|" or "(" is neither an alternative nor a group.
    assert phrases.words_of(re.compile("mail[|]box|over quota")) == ("mail", "over quota")
    assert phrases.words_of(re.compile("abc[(]def|ghi")) == ("abc", "ghi")
    assert phrases.words_of(re.compile(r"\[ts0[0-9]\]|later")) is None  # escaped brackets
    assert phrases.any_word(None, "anything")


def test_the_verdicts_read_the_same() -> None:
    assert phrases.retry_verdict("i'm not going to try again") is False
    assert phrases.retry_verdict("we will retry") is True
    assert phrases.retry_verdict("after 30 attempts to deliver") is False
    assert phrases.retry_verdict("hello") is None
    assert phrases.sounds_temporary("deferred for now") is True
    assert phrases.sounds_temporary("deferred, permanent") is False
    assert phrases.sounds_temporary("遅延") is True


def test_the_original_starts_at_the_first_marker_word_of_any_kind() -> None:
    # The later words are searched only before the first one found: one that comes first
    # in the text but last in the list is still the start.
    low = "hi\nyour mail failed.\n--- below this line is a copy of the message.\n\noriginal message"
    assert phrases.original_start(low, 0) == low.index("--- below")
    assert phrases.original_start("nothing to see", 0) == -1
    assert phrases.original_start("x\n-- original message\n", 0) == 2

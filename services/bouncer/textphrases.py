"""The phrases non-standard bounces are read by, compiled for lower-cased text.

Owns the regular expressions that scan a bounce's whole text (``textbounce.py``): where the
returned original starts, the phrases after which failed addresses are listed, what the
reporting MTA says it will do (retry, gave up), and the addresses that are not recipients
(help contacts, the sender). They are compiled without ``re.IGNORECASE`` and run on
:func:`lowered` text: a case-insensitive scan of a few kilobytes with these alternations
costs several times more (measured with ``make bench-corpus``), and lowering once per
message is cheap. Each top-level alternative starts with a literal character (no group,
no ``\b``): then the regex engine skips every position whose character cannot start a
match, instead of trying each alternative there (three times faster for TRIGGERS).
"""

from __future__ import annotations

import re

from services.bouncer.report import ADDRESS_RE
from shared.bounceclass.literals import (
    CHARACTER_CLASS,
    required_options,
    top_level,
    without_containing,
)

# Where the returned original starts: text below it is the message we sent, not the bounce.
ORIGINAL_MARKER = re.compile(
    r"^[ \t>]*(?:(?:-{2,}|={2,}|_{2,}|\*{2,})[ \t]*(?:original message|returned message|"
    r"undelivered message|unsent message|the original message|message headers|headers of|"
    r"start of returned message)|"
    r".{0,20}(?:this is a copy of the message|below this line is a copy|"
    r"original message follows|message headers follow|unsent message below|"
    # Vade ("Original message details:"), a directory's notice ("Original message as
    # received").
    r"original message (?:details|headers|as received))|"
    # Exim 3 and smail: "|----- Message text follows: -----|" ends the failed addresses.
    r"\|?-{5,}[ \t]*message text follows)",
    re.M,
)
# Words one of which every ORIGINAL_MARKER match contains (one per alternative above).
ORIGINAL_MARKER_WORDS = (
    "original message",
    "returned message",
    "undelivered message",
    "unsent message",
    "message headers",
    "headers of",
    "this is a copy of the message",
    "below this line is a copy",
    "message text follows",
)


def original_start(low: str, start: int) -> int:
    """Where the returned original starts in lowered ``low`` (an ORIGINAL_MARKER line at or
    after ``start``), or -1. The marker's line holds one of its words: the search starts at
    the line of the first one (a "^"-led MULTILINE scan of the whole text costs more than
    the rest of the text parse)."""
    first = -1
    for word in ORIGINAL_MARKER_WORDS:
        # Once one word is found, another matters only if it starts before it: each
        # further search ends there instead of reading the rest of the body.
        end = len(low) if first < 0 else first - 1 + len(word)
        found = low.find(word, start, end)
        if found >= 0:
            first = found
    if first < 0:
        return -1
    match = ORIGINAL_MARKER.search(low, max(start, low.rfind("\n", 0, first) + 1))
    return match.start() if match else -1


# Phrases after which the failed addresses are listed.
TRIGGERS = re.compile(
    r"(failed permanently|following address(es)?( had permanent fatal errors| failed|:)|"
    r"following recipients?|permanent fatal errors|could not be delivered to|"
    r"unable to deliver (your )?(message|mail)? ?to|delivery has failed to|"
    r"undeliverable to|failed to deliver to|delivery to the following|"
    r"not be delivered to|following destination|did not reach the following|"
    r"there was an error delivering|could not deliver|was not delivered to|"
    r"transient non-fatal errors|has not yet been delivered|permanent failure|"
    r"error (was|occurred) while delivering|delivery failed for|cannot be reached|"
    r"no such (user|mailbox)|user unknown|unknown user|mailbox unavailable|unable to deliver|"
    r"could not be forwarded|address(es)? (was|were) rejected|failed addresses follow|"
    r"delivered to the following|"
    # Japanese: "the following recipient(s)/address(es)", "could not send/deliver",
    # "recipient:" lines.
    r"以下の(宛先|あて先|メールアドレス|アドレス|受取人|受信者)|"
    r"下記の(宛先|あて先|メールアドレス|アドレス|受取人|受信者)|"
    r"送信(することが|ことが)?(でき|出来)ませんでした|"
    r"配信(することが|ことが)?(でき|出来)ませんでした|"
    r"配送(することが|ことが)?(でき|出来)ませんでした|"
    r"届けることが(でき|出来)ませんでした|"
    # "recipient:" with an ASCII or a full-width colon.
    r"受取人[ \t]*[:\uff1a]|宛先[ \t]*[:\uff1a]|あて先[ \t]*[:\uff1a]|送信先[ \t]*[:\uff1a])",
)
TEMPORARY = re.compile(
    r"will (continue to |keep )?(re)?try|will be retried|not yet been delivered|delayed|"
    r"temporar|still trying|deferred|transient|warning: could not send|"
    # "will attempt to deliver", not "the postmaster will attempt to contact the recipient"
    r"retry (timeout )?not|will attempt to (re)?(deliver|send)|no action is required|"
    r"this is only a warning|一時的|再送を試み|再試行|リトライ|遅延",
)
PERMANENT = re.compile(
    r"permanent|fatal|giving up|gave up|retry timeout exceeded|could not be delivered|"
    r"has been returned|user unknown|no such user|does not exist|doesn't have|unknown user|"
    r"not be delivered|failed|"
    # Japanese: does not exist, is not registered, not found, refused, could not.
    r"存在しません|登録されていません|見つかりません|拒否され|受信拒否|できませんでした|"
    r"出来ませんでした",
)
GAVE_UP = re.compile(
    r"permanent (error|failure)|given up|giving up|gave up|not going to try again|"
    r"failed permanently|permanent fatal|will not be retried|"
    r"送信を(中止|断念|あきらめ|諦め)|配信を(中止|断念|あきらめ|諦め)|"
    r"配送を(中止|断念|あきらめ|諦め)",
)
WILL_RETRY = re.compile(
    r"will (continue to |keep )?(re)?try|will be retried|not yet been delivered|still trying|"
    r"this is only a warning|warning: could not send|delivery (has been )?delayed|"
    r"attempts will continue|do not resend|"
    r"再送を試み(ます|ています)|再試行(します|しています|を続け)|配信を(続け|継続)|"
    r"送信を(続け|継続)",
)
# The reporting MTA tried for days and stopped: "... after 30 attempt(s) to deliver ...".
# Read after WILL_RETRY: a delay warning may count its attempts too, and then says it
# goes on.
EXHAUSTED = re.compile(r"after \d+ (?:delivery )?attempt\(?s?\)?")
# Addresses the bounce gives for help, not as the failed recipient: "please contact
# <postmaster@relay.example>", "send mail to postmaster@...", "reply to <postmaster@...>".
CONTACT = re.compile(
    r"(?:contact|write to|send (?:an? )?(?:e-?mail|mail|message|note) to|reply to|"
    r"forward (?:it|this(?: message)?) to|questions? to|assistance[,:]?)"
    r"[^@\n]{0,60}?<?(" + ADDRESS_RE.pattern + r")",
)
# Japanese notices name the help address first: "<postmaster@...> までご連絡ください".
CONTACT_BEFORE = re.compile(
    r"<?(" + ADDRESS_RE.pattern + r")>?[ \t]*(?:まで|へ|に)[ \t]*(?:ご連絡|お問い?合わせ|ご?返信)"
)
# The sender of the returned mail, named in the bounce's sentence: "... not accepting mail
# from <list@example.org>" (AOL), "could not deliver mail from <a> to <b>".
SENDER = re.compile(r"(?:mail|messages?|e-?mails?)[ \t]+from[ \t]+<?(" + ADDRESS_RE.pattern + r")")


def words_of(pattern: re.Pattern[str]) -> tuple[str, ...] | None:
    """Words one of which every match of ``pattern`` contains (one or more per top-level
    alternative, ``literals.required_options``), for substring tests before its scan;
    ``None`` when an alternative has none or the pattern has lookarounds, flags or
    escaped brackets, which that reading does not know."""
    source = pattern.pattern.replace("(?:", "(")  # read as a plain group: the same words
    if any(token in source for token in ("(?", "\\[", "\\]", "[]", "[^]")):
        return None
    # A class is one character of no word: read as ".", so that a "(", ")" or "|" in it
    # is never taken for a group or an alternative.
    source = CHARACTER_CLASS.sub(".", source)
    words: list[str] = []
    for alternative in top_level(source):
        options = required_options(alternative)
        if not options and alternative and not any(c in alternative for c in _SPECIAL):
            options = (alternative,)  # plain text too short for required_options ("遅延")
        if not options:
            return None
        words.extend(options)
    return without_containing(words)


def any_word(words: tuple[str, ...] | None, low: str) -> bool:
    """Whether ``low`` holds one of ``words`` (:func:`words_of`; ``None``: unknown, so yes)."""
    if words is None:
        return True
    # A loop, not any() over a generator: per bounce and phrase, the generator costs more.
    for word in words:  # noqa: SIM110
        if word in low:
            return True
    return False


def _found(pattern: re.Pattern[str], words: tuple[str, ...] | None, low: str) -> bool:
    # Most bounces hold none of the words: a few substring tests instead of the scan.
    return any_word(words, low) and pattern.search(low) is not None


_SPECIAL = frozenset("\\.^$*+?{}[]|()")
_GAVE_UP_WORDS = words_of(GAVE_UP)
_WILL_RETRY_WORDS = words_of(WILL_RETRY)
_TEMPORARY_WORDS = words_of(TEMPORARY)
TRIGGER_WORDS = words_of(TRIGGERS)
CONTACT_WORDS = words_of(CONTACT)
SENDER_WORDS = words_of(SENDER)


def lowered(text: str) -> str:
    """``text`` in lower case, position for position (so a match in it slices ``text``):
    the few characters whose lower case is longer ("İ") are kept as they are."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def retry_verdict(low: str) -> bool | None:
    """What the reporting MTA says it will do: ``True`` retry, ``False`` gave up, ``None``
    nothing (then the codes decide). Giving up beats retrying: qmail's "(#4.4.1) I'm not
    going to try again" is final, Sendmail's "Warning: ... 5xx" is not."""
    if _found(GAVE_UP, _GAVE_UP_WORDS, low):
        return False
    if _found(WILL_RETRY, _WILL_RETRY_WORDS, low):
        return True
    if EXHAUSTED.search(low):
        return False
    return None


def sounds_temporary(low: str) -> bool:
    """Whether a text without codes and without a verdict reads as a delay."""
    # The two substring tests first: they decide without the scan when either is there.
    return (
        "permanent" not in low and "fatal" not in low and _found(TEMPORARY, _TEMPORARY_WORDS, low)
    )

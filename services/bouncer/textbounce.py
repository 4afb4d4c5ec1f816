"""Non-standard bounces: find the failed recipients and the reason in the text.

Owns the heuristics for the bounce styles people meet without an RFC 3464 part: Postfix
and Exim (``X-Failed-Recipients``, "following address(es) failed"), Sendmail ("permanent
fatal errors"), qmail ("Hi. This is the qmail-send program", ``<addr>:`` paragraphs),
Exchange/Office 365 ("Delivery has failed to these recipients"), Gmail ("Delivery to the
following recipient failed permanently"), Yahoo ("Sorry, we were unable to deliver"), and
the many daemons that only write "<addr>: reason". It does not read DSN fields (``dsn.py``).
Here: the bounce's own words (above the returned original), and per failed address its
paragraph, status, reply code and whether the reporting MTA goes on trying; which
addresses failed is ``textfinders.py``'s, the phrases both read are ``textphrases.py``'s.

We do not use flufl.bounce: it answers only "which addresses" and "temporary or not", not
the reply code and diagnostic the classifier needs, and the few dozen patterns of these
modules cover the same styles while keeping the reason next to each address.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import Message

from services.bouncer import textphrases as phrases
from services.bouncer.charsets import header_text
from services.bouncer.dsn import original_message_id
from services.bouncer.report import (
    RecipientStatus,
    Report,
    ReportKind,
    body_text,
    find_reply_code,
    find_status,
)
from services.bouncer.textfinders import SENDMAIL_LINE, failed_recipients, reporting_mta

_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (status )?notification|returned mail|failure notice|"
    r"delivery fail|mail delivery (failed|system|failure)|non[- ]?deliver|could not be delivered|"
    r"warning: could not send|delayed mail|delivery (has )?failed|mail system error|"
    r"returned to sender|delivery problem|nicht zustellbar|unzustellbar|message not delivered|"
    r"mail failure|permanent error|rejected|bounce|user unknown|no such user|failed mail|"
    # Japanese carriers and ISPs: delivery error / failure, undelivered, returned mail.
    r"(配信|送信|配送)(エラー|失敗|不能)|不達|エラーメール|返送|届きませんでした",
    re.I,
)
_DAEMON_FROM = re.compile(
    r"mailer-daemon|postmaster|mail delivery|mailadmin|mmdf|mdaemon|smtp gateway", re.I
)
# Where the paragraph about an address ends: a blank line, then a word with an "@"; or a
# line starting with "<...@". Possessive blanks (never given back: \S cannot match them)
# keep runs of blank lines from costing their square (a bounce ending in 30 blank lines
# took 0.6 ms with "\n\s*\n\s*\S+@"); the starts found are the same.
# A quoted header field naming addresses: "  To: a@b, c@d" (matched on lowered text).
_HEADER_LINE = re.compile(r"[ \t>]*(to|cc|from|reply-to|sender)[ \t]*:")
_NEXT_ADDRESS = re.compile(r"\n[^\S\n]*+\n\s*+\S+@|\n\s*+<[^>\s]+@")


def looks_like_bounce(msg: Message) -> bool:
    """Whether the envelope or headers say "delivery failure" (before reading the text)."""
    if msg.get("X-Failed-Recipients"):
        return True
    sender = str(msg.get("From", "")) + " " + str(msg.get("Return-Path", ""))
    if _DAEMON_FROM.search(sender) or str(msg.get("Return-Path", "x")).strip() in ("<>", ""):
        return True
    return bool(_BOUNCE_SUBJECT.search(_subject(msg)))


def _subject(msg: Message) -> str:
    # RFC 2047 encoded words ("=?utf-8?B?...?=", "=?ISO-2022-JP?B?...?=") are common in
    # localised bounces.
    return header_text(str(msg.get("Subject", "")))


def parse_text_bounce(msg: Message, not_recipients: frozenset[str] = frozenset()) -> Report | None:
    """The failed recipients found in a non-standard bounce, or ``None``.

    ``not_recipients`` (lower case) are never taken: the addresses of a note that forwarded
    this bounce (``forwarded.py``).
    """
    if not looks_like_bounce(msg):
        return None
    text, low = bounce_words(body_text(msg))
    found = failed_recipients(msg, text, low, not_recipients)
    if not found:
        return None
    # With several failed addresses, each one's reason is its own paragraph's: the first
    # code anywhere in the text may be another address's.
    whole = text if len(found) == 1 else ""
    # Read once per text (the scans cost more than the rest of the parse), used per address.
    verdict = phrases.retry_verdict(low)
    # Read only if an address has neither a status nor a reply code (a scan of the text).
    delay_words = _Once(phrases.sounds_temporary, low)
    starts = [position(address, text, low) for address in found]
    preamble = _preamble(text, starts)
    recipients = tuple(
        _status_for(
            address, start, text, whole, verdict=verdict, delay_words=delay_words, preamble=preamble
        )
        for address, start in zip(found, starts, strict=True)
    )
    return Report(
        kind=ReportKind.BOUNCE,
        recipients=recipients,
        reporting_mta=reporting_mta(msg),
        original_message_id=original_message_id(msg),
        parser="text",
    )


class _Once:
    """``function(text)``, computed on the first call and kept (functools.cache over a
    partial costs more to build, per message, than the scan it saves)."""

    __slots__ = ("_function", "_text", "_value")

    def __init__(self, function: Callable[[str], bool], text: str) -> None:
        self._function = function
        self._text = text
        self._value: bool | None = None

    def __call__(self) -> bool:
        if self._value is None:
            self._value = self._function(self._text)
        return self._value


def bounce_words(text: str) -> tuple[str, str]:
    """The bounce's own words (above the returned original) and their lower case."""
    text = text.replace("\r\n", "\n")
    low = phrases.lowered(text)
    start = phrases.original_start(low, 40)
    return (text[:start], low[:start]) if start >= 0 else (text, low)


def _status_for(
    address: str,
    start: int,
    text: str,
    whole: str,
    *,
    verdict: bool | None,
    delay_words: Callable[[], bool],
    preamble: str,
) -> RecipientStatus:
    context = address_context(address, text, start)
    status = find_status(context) or find_status(whole)
    code = find_reply_code(context) or find_reply_code(whole)
    action = "delayed" if _is_temporary(verdict, delay_words, status, code) else "failed"
    # When the address's paragraph names no cause, its line's start may ("Invalid final
    # delivery userid: a@b"), or the text above the list of addresses, which many bounces
    # write once for all of them (Netscape/iPlanet "was not delivered within 2 days", AOL
    # "not accepting mail from ..."). Read only then (the classifier's ``context``): that
    # prefix is more often a label ("Undeliverable Address:", "To:") than a reason.
    return RecipientStatus(
        recipient=address,
        action=action,
        status=status,
        smtp_code=code,
        diagnostic=" ".join(context.split())[:500],
        context=f"{line_prefix(text, start)}\n{preamble}",
    )


def _preamble(text: str, starts: list[int]) -> str:
    """The bounce's lines before the first failed address it names (their last 300
    characters, as written: the classifier collapses them only if it reads them)."""
    first = min((i for i in starts if i >= 0), default=0)
    line_start = text.rfind("\n", 0, first) + 1
    return text[max(0, line_start - 300) : line_start]


def _is_temporary(
    verdict: bool | None, delay_words: Callable[[], bool], status: str, code: int
) -> bool:
    # What the reporting MTA says it will do (``verdict``, phrases.retry_verdict) beats the
    # remote's code; without either, the words of a delay (phrases.sounds_temporary) decide.
    if verdict is not None:
        return verdict
    if status:
        return status.startswith("4")
    if code:
        return code < 500
    return delay_words()


def position(address: str, text: str, low: str) -> int:
    """Where ``text`` names ``address``: the address, and not in a summary of the returned
    message's header fields ("To: a@b", whose Subject below could be read as the reason)
    when it is named elsewhere too; else its bare mailbox name (AOL's "screenname" lines,
    qualified by textfinders' _bare_names); -1 when nowhere."""
    needle = address.lower()
    first = start = low.find(needle)
    while start >= 0:
        if _HEADER_LINE.match(low, low.rfind("\n", 0, start) + 1, start) is None:
            return start
        start = low.find(needle, start + len(needle))
    if first >= 0:
        return first
    local = address.partition("@")[0]
    named = re.search(r"(?<![\w.@-])" + re.escape(local) + r"(?![\w@-])", text)
    return named.start() if named is not None else -1


def address_context(address: str, text: str, start: int) -> str:
    """The lines of ``text`` about ``address``, found at ``start`` (:func:`position`): from
    it to the next blank-line gap or next address."""
    if start < 0:
        return ""
    if text[start : start + len(address)].lower() != address.lower():
        # A bare mailbox name qualified by _bare_names: its own line gives the reason.
        address = address.partition("@")[0]
    rest = text[start + len(address) :]
    end = _NEXT_ADDRESS.search(rest)
    stop = end.start() if end else 800
    lines = SENDMAIL_LINE.finditer(rest, 1, stop) if "..." in rest[:stop] else ()
    for line in lines:
        # The next Sendmail transcript line about another address ends this one's.
        if line.group(1).lower() != address.lower():
            stop = line.start()
            break
    # A Sendmail transcript line gives the reply before the address ("554 <a@b>... Host
    # unknown"): keep a short line prefix, where that code is, in front.
    line_start = text.rfind("\n", 0, start) + 1
    prefix = text[line_start:start] if start - line_start <= 20 else ""
    rest = rest[:stop]
    if not rest.strip(" \t\n>.,;:"):
        # Nothing after the address: a short bounce giving the reason first ("User's mailbox
        # is full: <a@b>"). Its line is the reason; without it the failure had no reason
        # and no class.
        line_end = text.find("\n", start)
        return text[line_start : line_end if line_end >= 0 else len(text)][:800]
    if find_reply_code(prefix):
        return (prefix.rstrip("< \t") + " " + rest.lstrip(">"))[:800]
    return rest[:800]


def line_prefix(text: str, start: int) -> str:
    """What the line of ``text`` that names an address at ``start`` says before it (200
    characters), where some daemons put the reason: Ipswitch SMTP32 "Invalid final
    delivery userid: a@b", "User's mailbox is full: <a@b>", "552 Quota violation for a@b"."""
    if start < 0:
        return ""
    return text[text.rfind("\n", 0, start) + 1 : start][-200:]

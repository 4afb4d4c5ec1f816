"""Non-standard bounces: find the failed recipients and the reason in the text.

Owns the heuristics for the bounce styles people meet without an RFC 3464 part: Postfix
and Exim (``X-Failed-Recipients``, "following address(es) failed"), Sendmail ("permanent
fatal errors"), qmail ("Hi. This is the qmail-send program", ``<addr>:`` paragraphs),
Exchange/Office 365 ("Delivery has failed to these recipients"), Gmail ("Delivery to the
following recipient failed permanently"), Yahoo ("Sorry, we were unable to deliver"), and
the many daemons that only write "<addr>: reason". It does not read DSN fields (``dsn.py``).

We do not use flufl.bounce: it answers only "which addresses" and "temporary or not", not
the reply code and diagnostic the classifier needs, and the few dozen patterns below cover
the same styles while keeping the reason next to each address.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from email.message import Message

from services.bouncer import textphrases as phrases
from services.bouncer.charsets import header_text
from services.bouncer.dsn import original_message_id
from services.bouncer.report import (
    ADDRESS_RE,
    RecipientStatus,
    Report,
    ReportKind,
    body_text,
    clean_address,
    find_addresses,
    find_reply_code,
    find_status,
    is_mailbox_path,
)

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
# Never a failed recipient: the daemons that write bounces. ``postmaster`` is not here: we
# do mail postmasters, and a bounce about one must name it; the reporting system's own
# postmaster is excluded by ``_excluded`` instead (its domain, the "contact" lines).
_IGNORE_LOCAL = re.compile(r"^(mailer-daemon|abuse|noreply|no-reply)$", re.I)
# One sentence that names the failed address and the failure: "The following message,
# addressed to 'a@b', failed because ..." (Exim 2 mailstores), "The address to which your
# message was addressed, a@b, did not exactly match ..." (LLNL's directory). Read on
# whitespace-collapsed text: the sentence often breaks across lines.
_ADDRESSED = re.compile(
    r"\baddressed(?:[ ,:]+to)?[ ,:]+(?:e-?mail address[ :]*)?(?:--[ ]*)?['\"<]?("
    + ADDRESS_RE.pattern
    + r")['\">]?,?[ ]+(?:failed|did not|could not|can ?not|was not|is not|has not|"
    r"does not|bounced|was rejected|is unknown)",
    re.I,
)
_MAX_LINES_AFTER_TRIGGER = 12
# Where the paragraph about an address ends: a blank line, then a word with an "@"; or a
# line starting with "<...@". Possessive blanks (never given back: \S cannot match them)
# keep runs of blank lines from costing their square (a bounce ending in 30 blank lines
# took 0.6 ms with "\n\s*\n\s*\S+@"); the starts found are the same.
_NEXT_ADDRESS = re.compile(r"\n[^\S\n]*+\n\s*+\S+@|\n\s*+<[^>\s]+@")
_RECEIVED_BY = re.compile(r"\bby\s+([A-Za-z0-9.-]+)")
# Message-IDs look like addresses ("<12345@host>"): never a recipient (on lowered text).
_MESSAGE_ID = re.compile(r"message-id:?\s*<([^>\s]+@[^>\s]+)>")
# The words of phrases.CONTACT_BEFORE: its address-first scan runs only when one is there.
_JAPANESE_CONTACT_WORDS = ("連絡", "問い", "問合", "返信")
# A section rule ("--------Error Detail:", "=====") ends the lines read after a trigger.
_SECTION_RULE = re.compile(r"^[ \t]*(?:-{4,}|={4,}|\*{4,})")
# A bare mailbox name listed where an address is expected, in the paragraph after a
# "...to the following:" line: "\tscreenname" (AOL), " jdoe    No matches to nameserver
# query" (Yale's phquery). Followed by the end of the line, a wide gap or ": reason".
_BARE_NAME = re.compile(r"^[ \t*]*([A-Za-z0-9][A-Za-z0-9._+-]{0,63})(?:[ \t]*$|[ \t]{2,}\S|:[ \t])")
# "<addr>:" or "<addr>..." with only blanks before it on its line (checked by _colon_lines:
# a regex led by "^" with re.M tries every position of the text).
_COLON_ADDRESS = re.compile(r"<(" + ADDRESS_RE.pattern + r")>\s*(:|\.\.\.)")
# Old Sendmail and V5 Sendmail transcripts, anywhere in the body: the reply line names the
# address followed by "...", e.g. "554 <a@b>... Host unknown", "<<< 550 a@b... User
# unknown", "550 5.1.1 <a@b>... User unknown".
_SENDMAIL_LINE = re.compile(
    r"^[ \t]*(?:<<<[ \t]*)?[45]\d\d[ -](?:[ \t]*[45]\.\d{1,3}\.\d{1,3})?[ \t]*<?("
    + ADDRESS_RE.pattern
    + r")>?\.\.\.[ \t]*\S",
    re.M,
)


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
    text, low = _bounce_words(body_text(msg))
    excluded = _excluded(msg, text, low) | not_recipients
    found = _failed_recipients(msg, text, low, excluded)
    if not found:
        return None
    # With several failed addresses, each one's reason is its own paragraph's: the first
    # code anywhere in the text may be another address's.
    whole = text if len(found) == 1 else ""
    # Read once per text (the scans cost more than the rest of the parse), used per address.
    verdict = phrases.retry_verdict(low)
    # Read only if an address has neither a status nor a reply code (a scan of the text).
    delay_words = functools.cache(functools.partial(phrases.sounds_temporary, low))
    recipients = tuple(_status_for(address, text, whole, verdict, delay_words) for address in found)
    return Report(
        kind=ReportKind.BOUNCE,
        recipients=recipients,
        reporting_mta=_reporting_mta(msg),
        original_message_id=original_message_id(msg),
        parser="text",
    )


def _bounce_words(text: str) -> tuple[str, str]:
    """The bounce's own words (above the returned original) and their lower case."""
    text = text.replace("\r\n", "\n")
    low = phrases.lowered(text)
    start = phrases.original_start(low, 40)
    return (text[:start], low[:start]) if start >= 0 else (text, low)


def _excluded(msg: Message, text: str, low: str) -> set[str]:
    out: set[str] = set()
    for header in ("From", "To", "Return-Path", "Reply-To", "Sender", "Delivered-To", "Cc"):
        out.update(a.lower() for a in ADDRESS_RE.findall(str(msg.get(header, ""))))
    if "message-id" in low:
        out.update(_MESSAGE_ID.findall(low))
    # These name the address on the line of their words: only lines with an "@" can match.
    at_lines = "\n".join(line for line in low.split("\n") if "@" in line)
    out.update(m.group(1) for m in phrases.CONTACT.finditer(at_lines))
    out.update(m.group(1) for m in phrases.SENDER.finditer(at_lines))
    if any(word in at_lines for word in _JAPANESE_CONTACT_WORDS):
        out.update(m.group(1) for m in phrases.CONTACT_BEFORE.finditer(at_lines))
    # The reporting system's own postmaster ("postmaster@mx.isp.example" when the bounce
    # comes from isp.example or is written by mx.isp.example) is whom to ask, not who failed.
    hosts = {_reporting_mta(msg)} | {a.partition("@")[2].lower() for a in out if "@" in a}
    for address in find_addresses(text):
        local, _, domain = address.lower().partition("@")
        if local == "postmaster" and any(_related(domain, h) for h in hosts if h):
            out.add(address.lower())
    return out


def _related(domain: str, host: str) -> bool:
    # mx.isp.example and isp.example are one system: the same organisation's domain, taken
    # as the last two labels, or three under a country's second level (docomo.ne.jp).
    tail = _organisation(host)
    return domain == tail or domain.endswith("." + tail)


def _failed_recipients(msg: Message, text: str, low: str, excluded: set[str]) -> list[str]:
    header = [clean_address(a) for a in str(msg.get("X-Failed-Recipients", "")).split(",")]
    # Exim names them for machines (exim spec 4x "X-Failed-Recipients"): trusted even when
    # one equals the bounce's own To or From (a message sent to oneself, a forwarded
    # bounce), which would exclude it from the guesses in the text.
    found = _unique([a for a in header if "@" in a], set())
    if found:
        return found
    # Most specific first: a list of bare mailbox names after a "...the following:" line
    # beats the guesses from addresses anywhere in the text.
    finders = (_colon_paragraphs, _addressed, _after_triggers, _bare_names, _anywhere)
    for finder in (*finders, _few_addresses):
        found = _unique(finder(msg, text, low), excluded)
        if found:
            return found
    return []


def _colon_paragraphs(_msg: Message, text: str, low: str) -> list[str]:
    # qmail, Postfix (non-DSN), Yahoo, SBC: "<addr>:" alone or "<addr>: reason" on a line;
    # Sendmail transcripts: "<addr>... User unknown".
    found = _colon_lines(text)
    if "..." in text:  # every Sendmail transcript line has one
        found += [m.group(1) for m in _SENDMAIL_LINE.finditer(text)]
    return found


def _colon_lines(text: str) -> list[str]:
    """The addresses of "<addr>:" lines: re.finditer of ``^\\s*<addr>\\s*(:|...)`` with re.M."""
    found: list[str] = []
    pos = 0
    while (match := _COLON_ADDRESS.search(text, pos)) is not None:
        start = head = match.start()
        while head and text[head - 1].isspace():
            head -= 1
        if head == 0 or "\n" in text[head:start]:  # a line start within the blanks before
            found.append(match.group(1))
            pos = match.end()
        else:
            pos = start + 1
    return found


def _addressed(_msg: Message, text: str, low: str) -> list[str]:
    if "addressed" not in low:
        return []
    return [m.group(1) for m in _ADDRESSED.finditer(" ".join(text.split()))]


def _after_triggers(_msg: Message, text: str, low: str) -> list[str]:
    # One scan of the whole (lowered) text for the triggers, then the lines after each.
    out: list[str] = []
    start = 0
    while (trigger := phrases.TRIGGERS.search(low, start)) is not None:
        line_start = low.rfind("\n", 0, trigger.start()) + 1
        line_end = low.find("\n", trigger.end())
        lines = text[line_start:].split("\n", _MAX_LINES_AFTER_TRIGGER)[:_MAX_LINES_AFTER_TRIGGER]
        out += find_addresses(lines[0])
        for candidate in lines[1:]:
            if _SECTION_RULE.match(candidate):
                break
            out += find_addresses(candidate)
        if out or line_end < 0:
            return out
        start = line_end + 1
    return out


def _bare_names(msg: Message, text: str, low: str) -> list[str]:
    """Mailbox names listed without a domain after a "...the following:" line, qualified.

    The domain is the one an address elsewhere in the message gives that name, else the
    reporting system's own (the bounce comes from the system that owns the mailbox: AOL's
    daemon about an AOL screen name).
    """
    lines = text.split("\n")
    low_lines = low.split("\n")
    names: list[str] = []
    for index, line in enumerate(lines):
        if not (line.rstrip().endswith(":") and phrases.TRIGGERS.search(low_lines[index])):
            continue
        paragraph = _next_paragraph(lines, index + 1)
        names = [m.group(1) for m in map(_BARE_NAME.match, paragraph) if m]
        if names and len(names) == len(paragraph):
            break
        names = []
    if not names:
        return []
    known = {a.partition("@")[0].lower(): a for a in find_addresses(text)}
    home = _organisation(clean_address(str(msg.get("From", ""))).partition("@")[2].lower())
    return [known.get(n.lower()) or f"{n}@{home}" for n in names if home or n.lower() in known]


def _next_paragraph(lines: list[str], start: int) -> list[str]:
    while start < len(lines) and not lines[start].strip():
        start += 1
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    return lines[start:end]


def _organisation(host: str) -> str:
    # The organisation's domain of a host: its last two labels, or three under a country's
    # second level (mx.docomo.ne.jp -> docomo.ne.jp).
    labels = host.rstrip(".").split(".")
    if len(labels) < 2:
        return ""
    short_second = len(labels) > 2 and len(labels[-1]) == 2 and len(labels[-2]) <= 3
    return ".".join(labels[-3:] if short_second else labels[-2:])


def _anywhere(_msg: Message, text: str, low: str) -> list[str]:
    # Last resort: an address on the same line as a rejection reply or phrase.
    out: list[str] = []
    for line, low_line in zip(text.split("\n"), low.split("\n"), strict=True):
        if "@" in line and (find_reply_code(line) >= 500 or phrases.PERMANENT.search(low_line)):
            out += ADDRESS_RE.findall(line)
    return out


def _few_addresses(_msg: Message, text: str, low: str) -> list[str]:
    # A short bounce ("User's mailbox is full: <a@b>") names only the failed address:
    # take the addresses of the bounce's own words when there are at most three.
    found = find_addresses(text[:3000])
    return found if 0 < len({a.lower() for a in found}) <= 3 else []


def _unique(addresses: list[str], excluded: set[str]) -> list[str]:
    seen: list[str] = []
    for raw in addresses:
        address = re.sub(r"^(smtp|rfc822)[=:]", "", raw.strip(".<>;:,'"), flags=re.I)
        if '"@' not in address:
            address = address.strip('"')  # a quoted local part keeps its quotes
        local = address.partition("@")[0]
        if address.lower() in excluded or _IGNORE_LOCAL.match(local) or is_mailbox_path(address):
            continue
        if address.lower() not in (s.lower() for s in seen):
            seen.append(address)
    return seen


def _status_for(
    address: str, text: str, whole: str, verdict: bool | None, delay_words: Callable[[], bool]
) -> RecipientStatus:
    context = _context(address, text)
    status = find_status(context) or find_status(whole)
    code = find_reply_code(context) or find_reply_code(whole)
    action = "delayed" if _is_temporary(verdict, delay_words, status, code) else "failed"
    return RecipientStatus(
        recipient=address,
        action=action,
        status=status,
        smtp_code=code,
        diagnostic=" ".join(context.split())[:500],
    )


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


def _context(address: str, text: str) -> str:
    # The paragraph about this address: from it to the next blank-line gap or next address.
    start = text.lower().find(address.lower())
    if start < 0:
        # A bare mailbox name qualified by _bare_names: its own line gives the reason.
        local = address.partition("@")[0]
        named = re.search(r"(?<![\w.@-])" + re.escape(local) + r"(?![\w@-])", text)
        if named is None:
            return ""
        start, address = named.start(), local
    rest = text[start + len(address) :]
    end = _NEXT_ADDRESS.search(rest)
    stop = end.start() if end else 800
    lines = _SENDMAIL_LINE.finditer(rest, 1, stop) if "..." in rest[:stop] else ()
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
    if find_reply_code(prefix):
        return (prefix.rstrip("< \t") + " " + rest.lstrip(">"))[:800]
    return rest[:800]


def _reporting_mta(msg: Message) -> str:
    received = msg.get("Received")  # the first: written by the reporting MTA
    if received is not None:
        match = _RECEIVED_BY.search(str(received))
        if match:
            return match.group(1).lower()
    sender = clean_address(str(msg.get("From", "")))
    return sender.partition("@")[2].lower()

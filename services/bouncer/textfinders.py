"""Which addresses a non-standard bounce says failed, and which of its addresses never did.

Owns the finders of ``textbounce.py``, most specific first: Exim's ``X-Failed-Recipients``,
"<addr>:" paragraphs and Sendmail transcript lines, "addressed to <addr>, failed" sentences,
the lines after a trigger phrase, bare mailbox names listed after one (qualified with a
domain), an address beside a rejection, and the few addresses of a short bounce. And the
addresses that are never a failed recipient: the bounce's own headers, Message-IDs, help
contacts, the returned mail's sender, the reporting system's postmaster. It does not read
what happened to an address (``textbounce.py``).
"""

from __future__ import annotations

import re
from email.message import Message

from services.bouncer import textphrases as phrases
from services.bouncer.report import (
    ADDRESS_RE,
    clean_address,
    find_addresses,
    find_reply_code,
    is_mailbox_path,
)

# Never a failed recipient: the daemons that write bounces. ``postmaster`` is not here: we
# do mail postmasters, and a bounce about one must name it; the reporting system's own
# postmaster is excluded by ``_excluded`` instead (its domain, the "contact" lines).
_IGNORE_LOCAL = re.compile(r"^(mailer-daemon|abuse|noreply|no-reply)$", re.I)
# An address-type prefix left on a found address ("rfc822;" is split off before).
_ADDRESS_TYPE = re.compile(r"^(smtp|rfc822)[=:]", re.I)
# One sentence that names the failed address and the failure: "... addressed to 'a@b',
# failed ..." (Exim 2 mailstores), "... addressed, a@b, did not match ..." (a directory's
# notice). Read on whitespace-collapsed text: the sentence often breaks across lines.
_ADDRESSED = re.compile(
    r"\baddressed(?:[ ,:]+to)?[ ,:]+(?:e-?mail address[ :]*)?(?:--[ ]*)?['\"<]?("
    + ADDRESS_RE.pattern
    + r")['\">]?,?[ ]+(?:failed|did not|could not|can ?not|was not|is not|has not|"
    r"does not|bounced|was rejected|is unknown)",
    re.I,
)
# The bounce's own header fields: their addresses are never a failed recipient.
_OWN_FIELDS = ("From", "To", "Return-Path", "Reply-To", "Sender", "Delivered-To", "Cc")
_MAX_LINES_AFTER_TRIGGER = 12
_RECEIVED_BY = re.compile(r"\bby\s+([A-Za-z0-9.-]+)")
# Message-IDs look like addresses ("<12345@host>"): never a recipient (on lowered text).
_MESSAGE_ID = re.compile(r"message-id:?\s*<([^>\s]+@[^>\s]+)>")
# The words of phrases.CONTACT_BEFORE: its address-first scan runs only when one is there.
_JAPANESE_CONTACT_WORDS = ("連絡", "問い", "問合", "返信")
# A section rule ("--------Error Detail:", "=====") ends the lines read after a trigger.
_SECTION_RULE = re.compile(r"^[ \t]*(?:-{4,}|={4,}|\*{4,})")
# A bare mailbox name listed where an address is expected, in the paragraph after a
# "...to the following:" line: "\tscreenname" (AOL), " jdoe    <why>" (Yale's directory
# lookup). Followed by the end of the line, a wide gap or ": reason".
_BARE_NAME = re.compile(r"^[ \t*]*([A-Za-z0-9][A-Za-z0-9._+-]{0,63})(?:[ \t]*$|[ \t]{2,}\S|:[ \t])")
# "<addr>:" or "<addr>..." with only blanks before it on its line (checked by _colon_lines:
# a regex led by "^" with re.M tries every position of the text).
_COLON_ADDRESS = re.compile(r"<(" + ADDRESS_RE.pattern + r")>\s*(:|\.\.\.)")
# Old Sendmail and V5 Sendmail transcripts, anywhere in the body: the reply line names the
# address followed by "...", e.g. "554 <a@b>... Host unknown", "<<< 550 a@b... User
# unknown", "550 5.1.1 <a@b>... User unknown".
SENDMAIL_LINE = re.compile(
    r"^[ \t]*(?:<<<[ \t]*)?[45]\d\d[ -](?:[ \t]*[45]\.\d{1,3}\.\d{1,3})?[ \t]*<?("
    + ADDRESS_RE.pattern
    + r")>?\.\.\.[ \t]*\S",
    re.M,
)


def failed_recipients(
    msg: Message, text: str, low: str, not_recipients: frozenset[str] = frozenset()
) -> list[str]:
    """The failed addresses ``text`` (the bounce's own words; ``low`` lowered) names, never
    one of ``not_recipients`` (lower case) nor one that is no recipient (module docstring)."""
    return _failed_recipients(msg, text, low, _excluded(msg, text, low) | not_recipients)


def reporting_mta(msg: Message) -> str:
    """The host that wrote the bounce: its first Received field's "by", else its From's."""
    received = msg.get("Received")  # the first: written by the reporting MTA
    if received is not None:
        match = _RECEIVED_BY.search(str(received))
        if match:
            return match.group(1).lower()
    sender = clean_address(str(msg.get("From", "")))
    return sender.partition("@")[2].lower()


def _excluded(msg: Message, text: str, low: str) -> set[str]:
    # One scan of the fields' values, a line each (no address spans a line).
    fields = "\n".join(str(msg.get(header, "")) for header in _OWN_FIELDS)
    out = {a.lower() for a in ADDRESS_RE.findall(fields)}
    if "message-id" in low:
        out.update(_MESSAGE_ID.findall(low))
    # These name the address on the line of their words: only lines with an "@" can match.
    at_lines = "\n".join(line for line in low.split("\n") if "@" in line)
    if phrases.any_word(phrases.CONTACT_WORDS, at_lines):
        out.update(m.group(1) for m in phrases.CONTACT.finditer(at_lines))
    if phrases.any_word(phrases.SENDER_WORDS, at_lines):
        out.update(m.group(1) for m in phrases.SENDER.finditer(at_lines))
    if not at_lines.isascii() and any(word in at_lines for word in _JAPANESE_CONTACT_WORDS):
        out.update(m.group(1) for m in phrases.CONTACT_BEFORE.finditer(at_lines))
    # The reporting system's own postmaster ("postmaster@mx.isp.example" when the bounce
    # comes from isp.example or is written by mx.isp.example) is whom to ask, not who failed.
    # An address of the text is lowered in ``low`` (its local part is ASCII or quoted).
    if "postmaster" not in low:
        return out
    hosts = {reporting_mta(msg)} | {a.partition("@")[2].lower() for a in out if "@" in a}
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
        found += [m.group(1) for m in SENDMAIL_LINE.finditer(text)]
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
    # One scan of the whole (lowered) text for the triggers, then the lines after each;
    # none when the text holds none of their words (a third of the corpora's bounces).
    out: list[str] = []
    if not phrases.any_word(phrases.TRIGGER_WORDS, low):
        return out
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
    if not phrases.any_word(phrases.TRIGGER_WORDS, low):
        return []  # no line can hold a trigger
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
    seen_lowered: set[str] = set()
    for raw in addresses:
        address = _ADDRESS_TYPE.sub("", raw.strip(".<>;:,'"))
        if '"@' not in address:
            address = address.strip('"')  # a quoted local part keeps its quotes
        local = address.partition("@")[0]
        lowered = address.lower()
        if lowered in excluded or _IGNORE_LOCAL.match(local) or is_mailbox_path(address):
            continue
        if lowered not in seen_lowered:
            seen.append(address)
            seen_lowered.add(lowered)
    return seen

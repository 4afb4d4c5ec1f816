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

import re
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message

from services.bouncer.dsn import original_message_id
from services.bouncer.report import (
    ADDRESS_RE,
    RecipientStatus,
    Report,
    ReportKind,
    body_text,
    clean_address,
    find_reply_code,
    find_status,
    is_mailbox_path,
)

_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (status )?notification|returned mail|failure notice|"
    r"delivery fail|mail delivery (failed|system|failure)|non[- ]?deliver|could not be delivered|"
    r"warning: could not send|delayed mail|delivery (has )?failed|mail system error|"
    r"returned to sender|delivery problem|nicht zustellbar|unzustellbar|message not delivered|"
    r"mail failure|permanent error|rejected|bounce",
    re.I,
)
_DAEMON_FROM = re.compile(
    r"mailer-daemon|postmaster|mail delivery|mailadmin|mmdf|smtp gateway", re.I
)
# Where the returned original starts: text below it is the message we sent, not the bounce.
_ORIGINAL_MARKER = re.compile(
    r"^[ \t>]*(?:(?:-{2,}|={2,}|_{2,}|\*{2,})[ \t]*(?:original message|returned message|"
    r"undelivered message|unsent message|the original message|message headers|headers of)|"
    r".{0,20}(?:this is a copy of the message|below this line is a copy|"
    r"original message follows|message headers follow|unsent message below)|"
    # Exim 3 and smail: "|----- Message text follows: -----|" ends the failed addresses.
    r"\|?-{5,}[ \t]*message text follows)",
    re.I | re.M,
)
# Phrases after which the failed addresses are listed.
_TRIGGERS = re.compile(
    r"(failed permanently|following address(es)?( had permanent fatal errors| failed|:)|"
    r"following recipients?|permanent fatal errors|could not be delivered to|"
    r"unable to deliver (your )?(message|mail)? ?to|delivery has failed to|"
    r"undeliverable to|failed to deliver to|delivery to the following|"
    r"not be delivered to|following destination|did not reach the following|"
    r"there was an error delivering|could not deliver|was not delivered to|"
    r"transient non-fatal errors|has not yet been delivered|permanent failure|"
    r"error (was|occurred) while delivering|delivery failed for|cannot be reached|"
    r"no such (user|mailbox)|user unknown|unknown user|mailbox unavailable|unable to deliver|"
    r"could not be forwarded|address(es)? (was|were) rejected|failed addresses follow)",
    re.I,
)
_TEMPORARY = re.compile(
    r"will (continue to |keep )?(re)?try|will be retried|not yet been delivered|delayed|"
    r"temporar|still trying|deferred|transient|warning: could not send|"
    r"retry (timeout )?not|will attempt|no action is required|this is only a warning",
    re.I,
)
_PERMANENT = re.compile(
    r"permanent|fatal|giving up|gave up|retry timeout exceeded|could not be delivered|"
    r"has been returned|user unknown|no such user|does not exist|doesn't have|unknown user|"
    r"not be delivered|failed",
    re.I,
)
_GAVE_UP = re.compile(
    r"permanent (error|failure)|given up|giving up|gave up|not going to try again|"
    r"failed permanently|permanent fatal|will not be retried",
    re.I,
)
_WILL_RETRY = re.compile(
    r"will (continue to |keep )?(re)?try|will be retried|not yet been delivered|still trying|"
    r"this is only a warning|warning: could not send|delivery (has been )?delayed",
    re.I,
)
# Never a failed recipient: the daemons that write bounces. ``postmaster`` is not here: we
# do mail postmasters, and a bounce about one must name it; the reporting system's own
# postmaster is excluded by ``_excluded`` instead (its domain, the "contact" lines).
_IGNORE_LOCAL = re.compile(r"^(mailer-daemon|abuse|noreply|no-reply)$", re.I)
# Addresses the bounce gives for help, not as the failed recipient: "please contact
# <postmaster@relay.example>", "send mail to postmaster@...", "reply to <postmaster@...>".
_CONTACT = re.compile(
    r"\b(?:contact|write to|send (?:an? )?(?:e-?mail|mail|message|note) to|reply to|"
    r"forward (?:it|this(?: message)?) to|questions? to|assistance[,:]?)"
    r"[^@\n]{0,60}?<?(" + ADDRESS_RE.pattern + r")",
    re.I,
)
_MAX_LINES_AFTER_TRIGGER = 12
_COLON_LINE = re.compile(r"^\s*<(" + ADDRESS_RE.pattern + r")>\s*(:|\.\.\.)", re.M)
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
    # RFC 2047 encoded words ("=?utf-8?B?...?=") are common in localised bounces.
    try:
        return str(make_header(decode_header(str(msg.get("Subject", "")))))
    except (UnicodeDecodeError, LookupError, HeaderParseError):
        return str(msg.get("Subject", ""))


def parse_text_bounce(msg: Message, not_recipients: frozenset[str] = frozenset()) -> Report | None:
    """The failed recipients found in a non-standard bounce, or ``None``.

    ``not_recipients`` (lower case) are never taken: the addresses of a note that forwarded
    this bounce (``forwarded.py``).
    """
    if not looks_like_bounce(msg):
        return None
    text = _bounce_words(body_text(msg))
    excluded = _excluded(msg, text) | not_recipients
    found = _failed_recipients(msg, text, excluded)
    if not found:
        return None
    # With several failed addresses, each one's reason is its own paragraph's: the first
    # code anywhere in the text may be another address's.
    whole = text if len(found) == 1 else ""
    recipients = tuple(_status_for(address, text, whole) for address in found)
    return Report(
        kind=ReportKind.BOUNCE,
        recipients=recipients,
        reporting_mta=_reporting_mta(msg),
        original_message_id=original_message_id(msg),
        parser="text",
    )


def _bounce_words(text: str) -> str:
    text = text.replace("\r\n", "\n")
    match = _ORIGINAL_MARKER.search(text, 40)
    return text[: match.start()] if match else text


def _excluded(msg: Message, text: str) -> set[str]:
    out: set[str] = set()
    for header in ("From", "To", "Return-Path", "Reply-To", "Sender", "Delivered-To", "Cc"):
        out.update(a.lower() for a in ADDRESS_RE.findall(str(msg.get(header, ""))))
    # Message-IDs look like addresses ("<12345@host>"): never a recipient.
    out.update(a.lower() for a in re.findall(r"message-id:?\s*<([^>\s]+@[^>\s]+)>", text, re.I))
    out.update(m.group(1).lower() for m in _CONTACT.finditer(text))
    # The reporting system's own postmaster ("postmaster@mx.isp.example" when the bounce
    # comes from isp.example or is written by mx.isp.example) is whom to ask, not who failed.
    hosts = {_reporting_mta(msg)} | {a.partition("@")[2].lower() for a in out if "@" in a}
    for address in ADDRESS_RE.findall(text):
        local, _, domain = address.lower().partition("@")
        if local == "postmaster" and any(_related(domain, h) for h in hosts if h):
            out.add(address.lower())
    return out


def _related(domain: str, host: str) -> bool:
    # mx.isp.example and isp.example are one system: the same organisation's domain, taken
    # as the last two labels, or three under a country's second level (docomo.ne.jp).
    labels = host.split(".")
    short_second = len(labels) > 2 and len(labels[-1]) == 2 and len(labels[-2]) <= 3
    tail = ".".join(labels[-3:] if short_second else labels[-2:])
    return domain == tail or domain.endswith("." + tail)


def _failed_recipients(msg: Message, text: str, excluded: set[str]) -> list[str]:
    header = [clean_address(a) for a in str(msg.get("X-Failed-Recipients", "")).split(",")]
    # Exim names them for machines (exim spec 4x "X-Failed-Recipients"): trusted even when
    # one equals the bounce's own To or From (a message sent to oneself, a forwarded
    # bounce), which would exclude it from the guesses in the text.
    found = _unique([a for a in header if "@" in a], set())
    if found:
        return found
    for finder in (_colon_paragraphs, _after_triggers, _anywhere, _few_addresses):
        found = _unique(finder(text), excluded)
        if found:
            return found
    return []


def _colon_paragraphs(text: str) -> list[str]:
    # qmail, Postfix (non-DSN), Yahoo, SBC: "<addr>:" alone or "<addr>: reason" on a line;
    # Sendmail transcripts: "<addr>... User unknown".
    found = [m.group(1) for m in _COLON_LINE.finditer(text)]
    return found + [m.group(1) for m in _SENDMAIL_LINE.finditer(text)]


def _after_triggers(text: str) -> list[str]:
    lines = text.split("\n")
    out: list[str] = []
    for index, line in enumerate(lines):
        if not _TRIGGERS.search(line):
            continue
        window = lines[index : index + _MAX_LINES_AFTER_TRIGGER]
        for candidate in window:
            out += ADDRESS_RE.findall(candidate)
        if out:
            return out
    return out


def _anywhere(text: str) -> list[str]:
    # Last resort: an address on the same line as a rejection reply or phrase.
    out: list[str] = []
    for line in text.split("\n"):
        if find_reply_code(line) >= 500 or _PERMANENT.search(line):
            out += ADDRESS_RE.findall(line)
    return out


def _few_addresses(text: str) -> list[str]:
    # A short bounce ("User's mailbox is full: <a@b>") names only the failed address:
    # take the addresses of the bounce's own words when there are at most three.
    found = ADDRESS_RE.findall(text[:3000])
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


def _status_for(address: str, text: str, whole: str) -> RecipientStatus:
    context = _context(address, text)
    status = find_status(context) or find_status(whole)
    code = find_reply_code(context) or find_reply_code(whole)
    action = "delayed" if _is_temporary(text, status, code) else "failed"
    return RecipientStatus(
        recipient=address,
        action=action,
        status=status,
        smtp_code=code,
        diagnostic=" ".join(context.split())[:500],
    )


def _is_temporary(text: str, status: str, code: int) -> bool:
    # What the reporting MTA says it will do beats the remote's code: qmail's
    # "(#4.4.1) I'm not going to try again" is final, Sendmail's "Warning: ... 5xx" is not.
    if _GAVE_UP.search(text):
        return False
    if _WILL_RETRY.search(text):
        return True
    if status:
        return status.startswith("4")
    if code:
        return code < 500
    return bool(_TEMPORARY.search(text)) and not re.search(r"permanent|fatal", text, re.I)


def _context(address: str, text: str) -> str:
    # The paragraph about this address: from it to the next blank-line gap or next address.
    start = text.lower().find(address.lower())
    if start < 0:
        return ""
    rest = text[start + len(address) :]
    end = re.search(r"\n\s*\n\s*\S+@|\n\s*<[^>\s]+@", rest)
    stop = end.start() if end else 800
    for line in _SENDMAIL_LINE.finditer(rest, 1, stop):
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
    received = msg.get_all("Received") or []
    if received:
        match = re.search(r"\bby\s+([A-Za-z0-9.-]+)", str(received[0]))
        if match:
            return match.group(1).lower()
    sender = clean_address(str(msg.get("From", "")))
    return sender.partition("@")[2].lower()

"""Bounces that a person forwarded: "FYI, see below" above a quoted delivery failure.

Owns finding the forwarded bounce under a human note (inline, after an "Original Message"
or "Forwarded message" marker and the quoted From/Sent/To/Subject block, or attached as
``message/rfc822``) and reading only it: the note's own addresses (the helpdesk's, its
colleagues') are never a failed recipient, since picking one would suppress an innocent
address. When the forwarded text names no failed recipient the answer is "nothing found"
(kind ``other``), not a guess from the note. A forwarded RFC 3464 report is ``dsn.py``'s
(it finds the delivery-status part wherever it is); the text heuristics are
``textbounce.py``'s.
"""

from __future__ import annotations

import re
from email.message import Message

from services.bouncer.mime import parse_text
from services.bouncer.report import ADDRESS_RE, Report, ReportKind, body_text
from services.bouncer.textbounce import looks_like_bounce, parse_text_bounce

_DAEMON = re.compile(r"mailer-daemon|postmaster|mail delivery|microsoftexchange", re.I)
# Where a mail client starts the forwarded or quoted message.
_MARKER = re.compile(
    r"^[ \t>]*(?:-{3,}[ \t]*(?:original message|forwarded message|ursprüngliche nachricht|"
    r"message d'origine|mensaje original)[ \t]*-{3,}|begin forwarded message:|_{10,})[ \t]*$",
    re.I | re.M,
)
# An Outlook-style quoted header block without a marker line: "From: ...\nSent: ...".
# A quote mark (and its one blank) at a line start: "> " of a forwarded text.
_QUOTE = re.compile(r"^[ \t]*>[ \t]?")
_HEADER_BLOCK = re.compile(r"^[ \t>*]*From:[^\n]*\n[ \t>*]*(?:Sent|Date):", re.I | re.M)
_QUOTED_FIELD = re.compile(r"^\*?([A-Za-z-]+)\*?:[ \t]*(.*)$")
_FIELDS = {"from", "sent", "date", "to", "cc", "subject"}


def parse_forwarded(msg: Message) -> Report | None:
    """The forwarded bounce's failed recipients, "nothing" when it names none, or ``None``
    when ``msg`` is no person's forward of a bounce."""
    if _DAEMON.search(str(msg.get("From", ""))):
        return None  # the mail system's own words: a bounce, not a forward of one
    attached = _attached_bounce(msg)
    text = body_text(msg)
    if attached is None:
        start = _forward_start(text)
        if start < 0:
            return None
        attached = _inline_message(text[start:])
        if attached is None:
            return None
        note = text[:start]
    else:
        note = text
    not_recipients = frozenset(a.lower() for a in ADDRESS_RE.findall(note))
    not_recipients |= {a.lower() for a in ADDRESS_RE.findall(str(msg.get("From", "")))}
    report = parse_text_bounce(attached, not_recipients)
    if report is None:
        return Report(kind=ReportKind.OTHER, parser="forwarded")
    return Report(
        kind=report.kind,
        recipients=report.recipients,
        reporting_mta=report.reporting_mta,
        original_message_id=report.original_message_id,
        parser="forwarded:text",
    )


def _attached_bounce(msg: Message) -> Message | None:
    for part in msg.walk():
        if part.get_content_type() == "message/rfc822" and part.is_multipart():
            inner = part.get_payload(0)
            if isinstance(inner, Message) and _is_bounce(inner):
                return inner
    return None


def _forward_start(text: str) -> int:
    # A marker line, or Outlook's quoted header block alone. A reply quoting an ordinary
    # message has these too: _inline_message then finds no bounce in it.
    marker = _MARKER.search(text) or _HEADER_BLOCK.search(text)
    return marker.start() if marker else -1


def _inline_message(text: str) -> Message | None:
    """The forwarded message as a message: its quoted header block, then its text."""
    lines = [_QUOTE.sub("", line) for line in text.replace("\r\n", "\n").split("\n")]
    index = 0
    while index < len(lines) and (not lines[index].strip() or _MARKER.match(lines[index])):
        index += 1
    headers: list[str] = []
    while index < len(lines):
        match = _QUOTED_FIELD.match(lines[index].strip())
        if not match or match.group(1).lower() not in _FIELDS:
            break
        headers.append(f"{match.group(1)}: {match.group(2)}")
        index += 1
    if not headers:
        return None
    body = "\n".join(lines[index:])
    inner = parse_text("\n".join(headers) + "\n\n" + body)
    return inner if _is_bounce(inner) else None


def _is_bounce(inner: Message) -> bool:
    # Whose words were forwarded: a mail system's (a daemon sender or a bounce subject).
    return bool(_DAEMON.search(str(inner.get("From", "")))) or looks_like_bounce(inner)

"""What a parsed report says: the types every parser returns, and small shared helpers.

Owns the :class:`Report` / :class:`RecipientStatus` values and the text helpers the parsers
share (status codes, addresses, readable body text). It does not parse a whole message
(``parse.py`` picks the parser) and does not classify (``classify.py``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message

from services.bouncer.charsets import decode_text
from services.bouncer.mime import BounceMessage
from services.bouncer.utf8addr import decode_utf8_address

# class.subject.detail, not followed by another ".digit": qmail writes "4.3.2.1 does not
# like recipient." for the host it tried, and "4.3.2" is no status there.
_STATUS_CORE = r"([245])\.(\d{1,3})\.(\d{1,3})\b(?!\.\d)"
#: RFC 3463 enhanced status code: class.subject.detail. Not part of an IPv4 address: not
#: after "digit." ("host mx[192.5.7.1] said:"), unless that is a reply code ("550.5.1.1").
STATUS_RE = re.compile(r"\b(?:(?<=(?<!\d)[245]\d\d\.)|(?<!\d\.))" + _STATUS_CORE)
#: An SMTP reply code at the start of a reply line, optionally with an enhanced code. Not
#: the area code of a telephone number ("call (480) 555-0100", "480-555-0100").
REPLY_RE = re.compile(
    r"(?<![\d.])([245]\d\d)(?:[ -]+#?([245]\.\d{1,3}\.\d{1,3}))?"
    r"(?![\d.]|\)?[ .-]?\d{3}[ .-]\d{4}|[ .-]\d{4}(?!\d))"
)
#: An address; the local part may be quoted (RFC 5321 4.1.2 Quoted-string,
#: ``"john smith"@example.org``), and then it is taken whole, quotes included.
ADDRESS_RE = re.compile(
    r'(?:[A-Za-z0-9!#$%&\'*+/=?^_`{|}~.-]+|"(?:[^"\\\r\n]|\\.){1,64}")'
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
)
# A local delivery target written where an address is expected: a mailbox file
# ("/var/mail/john") or a pipe ("|/usr/bin/procmail"). X.400 gateway addresses also start
# with "/" but always carry "=" ("/G=John/S=Smith/O=Org/@gw.example"), so they are kept.
_MAILBOX_PATH_RE = re.compile(r"^[|/][^=]*$")


class ReportKind(enum.StrEnum):
    """What kind of message arrived at the bounce domain."""

    DSN = "dsn"  # RFC 3464 multipart/report; report-type=delivery-status
    BOUNCE = "bounce"  # a non-standard bounce: recipient and reason found in the text
    COMPLAINT = "complaint"  # RFC 5965 feedback report
    AUTO_REPLY = "auto_reply"  # RFC 3834 auto-reply or a vacation responder
    OTHER = "other"  # none of these: a human reply, spam, ...


@dataclass(frozen=True)
class RecipientStatus:
    """What one report says about one recipient (RFC 3464 2.3 per-recipient fields)."""

    recipient: str
    action: str = ""  # failed, delayed, delivered, relayed, expanded
    status: str = ""  # enhanced status code "5.1.1", "" when none was given
    smtp_code: int = 0  # the remote reply code from Diagnostic-Code or the text
    diagnostic: str = ""
    remote_mta: str = ""
    original_recipient: str = ""
    # The report's words around this recipient that are not its diagnostic (the start of
    # its line, the text above the list of addresses, the notification's paragraph), read
    # for a reason only when the diagnostic names none (shared.bounceclass.explain).
    context: str = ""

    @property
    def permanent(self) -> bool:
        """Whether the failure is final (RFC 3464 2.3.3 Action, RFC 3463 class, reply code)."""
        # RFC 3464 2.3.3: "failed" is final even with a 4.x.x status (e.g. 4.4.7 expired).
        if self.action in ("failed", "delayed"):
            return self.action == "failed"
        if self.status:
            return self.status.startswith("5")
        return self.smtp_code >= 500

    @property
    def is_failure(self) -> bool:
        """Whether this recipient failed or is delayed (not delivered, relayed or expanded)."""
        return self.action in ("", "failed", "delayed")


@dataclass(frozen=True)
class Report:
    """One parsed message that arrived at the bounce domain."""

    kind: ReportKind
    recipients: tuple[RecipientStatus, ...] = ()
    reporting_mta: str = ""
    feedback_type: str = ""  # ARF Feedback-Type (abuse, fraud, ...)
    original_message_id: str = ""
    parser: str = ""  # which parser decided ("dsn", "text:qmail", "arf", ...)
    #: The report message's own Message-ID: a complaint's proof, kept on its suppression.
    report_id: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def failures(self) -> tuple[RecipientStatus, ...]:
        """The recipients that failed or were delayed."""
        return tuple(r for r in self.recipients if r.is_failure)


def find_status(text: str) -> str:
    """The first RFC 3463 enhanced status code in ``text`` (ignoring 2.x.x), or ''."""
    for match in _led_by(_STATUS_AFTER, text, _word_char):
        start = match.start()
        after_digit = start >= 2 and text[start - 1] == "." and text[start - 2].isdecimal()
        if after_digit and not _reply_before(text, start - 1):
            continue  # within an IPv4 address ("[192.5.7.1]"), not a status
        if match.group(1) != "2":
            return match.group(0)
    return ""


def _reply_before(text: str, dot: int) -> bool:
    # A reply code ends at ``dot``: "550.5.1.1" (STATUS_RE's first lookbehind).
    code = text[dot - 3 : dot]
    if dot < 3 or code[0] not in "245" or not code[1:].isdecimal():
        return False
    return dot == 3 or not text[dot - 4].isdecimal()


def find_reply_code(text: str) -> int:
    """The first 4xx/5xx SMTP reply code in ``text``, or 0."""
    for match in _led_by(_REPLY_AFTER, text, _digit_or_dot):
        code = int(match.group(1))
        if code >= 400:
            return code
    return 0


# STATUS_RE and REPLY_RE without their leading assertion (``\b``, ``(?<![\d.])``), which
# is checked in Python instead: a pattern that starts with a character class lets the regex
# engine skip to the candidates, one that starts with an assertion tries every position
# (these run on every bounce's whole text). _led_by gives exactly the full patterns' matches.
_STATUS_AFTER = re.compile(_STATUS_CORE)
_REPLY_AFTER = re.compile(REPLY_RE.pattern.removeprefix(r"(?<![\d.])"))


def _word_char(char: str) -> bool:
    return char.isalnum() or char == "_"  # re's \w


def _digit_or_dot(char: str) -> bool:
    return char.isdecimal() or char == "."  # re's [\d.]


def _led_by(
    pattern: re.Pattern[str], text: str, refused: Callable[[str], bool]
) -> Iterator[re.Match[str]]:
    """``pattern``'s matches in ``text`` (as finditer) that the character before does not
    refuse: a refused start is tried again one position on, as the full pattern would."""
    pos = 0
    while (match := pattern.search(text, pos)) is not None:
        start = match.start()
        if start and refused(text[start - 1]):
            pos = start + 1
            continue
        yield match
        pos = match.end()


def find_addresses(text: str) -> list[str]:
    """Every address in ``text`` (``ADDRESS_RE.findall``), scanning only the lines with an
    "@": an address never spans lines, and the scan tries every position of a line."""
    if "@" not in text:
        return []
    lines = [line for line in text.split("\n") if "@" in line]
    return ADDRESS_RE.findall("\n".join(lines))


def clean_address(value: str) -> str:
    """An address from a header or DSN field: ``rfc822; <a@b>`` -> ``a@b``."""
    value = value.strip()
    addr_type, sep, rest = value.partition(";")
    if sep and addr_type.strip().lower() == "utf-8":
        # RFC 6533 3: xtext or unitext, "\x{F6}" for U+00F6; the ASCII-only pattern below
        # would find a fragment of a UTF-8 address ("ran@example.com" in "jöran@...").
        return decode_utf8_address(rest.strip()).strip("<> \t\"'")
    if sep and "@" not in addr_type:
        value = rest.strip()
    match = ADDRESS_RE.search(value)
    if match:
        return match.group(0).strip(".")
    return value.strip("<> \t\"'")


def is_mailbox_path(value: str) -> bool:
    """Whether ``value`` is a local mailbox file or pipe (``/var/mail/john``), not an address."""
    return bool(_MAILBOX_PATH_RE.match(value.strip()))


def body_text(msg: Message, limit: int = 200_000) -> str:
    """The readable text of a message: its text/* parts, skipping attached messages."""
    chunks: list[str] = []
    _collect_text(msg, chunks, top=True)
    return "\n".join(chunks)[:limit]


def _collect_text(part: Message, chunks: list[str], top: bool) -> None:
    ctype = part.get_content_type()
    if part.is_multipart():
        if ctype == "message/rfc822" and not top:
            return  # the returned original message: not the bounce's own words
        for sub in part.get_payload():
            if isinstance(sub, Message):
                _collect_text(sub, chunks, top=False)
        return
    readable = ctype.startswith("text/") and ctype != "text/rfc822-headers"
    binary = part.get_content_maintype() in ("image", "audio", "video", "application")
    if readable or (top and not binary):
        chunks.append(decode_part(part))


def decode_part(part: Message) -> str:
    """A leaf part's text, transfer-decoded; undecodable bytes become replacement chars
    (decoded once per part of a :class:`BounceMessage` tree)."""
    if isinstance(part, BounceMessage):
        if part.decoded is None:
            part.decoded = _decoded(part)
        return part.decoded
    return _decoded(part)


# An HTML part read as text: its line breaks, then its other tags.
_HTML_BREAK = re.compile(r"<br\s*/?>|</p>|</div>|</tr>", re.I)
_HTML_TAG = re.compile(r"<[^>]+>")


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    # The label is a hint: ISO-2022-JP without one, and the Japanese supersets (charsets.py).
    text = decode_text(payload, part.get_content_charset())
    if part.get_content_type() == "text/html":
        text = _HTML_BREAK.sub("\n", text)
        text = _HTML_TAG.sub(" ", text)
        text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&nbsp;", " ")
    return text

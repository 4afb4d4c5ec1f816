"""Which parser reads a message that arrived at the bounce domain.

Owns the order: feedback report (RFC 5965), then Microsoft's JMRP complaints (no
feedback-report part), then DSN (RFC 3464; a recipient its fields give no reason for reads the
notification's words about it), then Amazon SES
notifications (JSON delivered by SNS), then mailing-list "held" / "not a member" notices
(never bounces; before auto-replies, as list managers mark them auto-replied), then strong
auto-reply signals (RFC 3834, vacation subjects), then a bounce a person forwarded (only
the forwarded part is read), then mobile carriers' and SMS gateways' notices (the status
their phrases stand for), then non-standard bounce text, then the weak
``Auto-Submitted`` signal, else "other". Each parser is tried only on what it can read;
the first that recognises the message decides. It does not classify or act.
"""

from __future__ import annotations

import dataclasses
from email.message import Message

from services.bouncer.arf import parse_arf
from services.bouncer.autoreply import strong_auto_reply, weak_auto_reply
from services.bouncer.carriers import parse_carrier_bounce
from services.bouncer.dsn import parse_dsn
from services.bouncer.dsnnote import with_notification_words
from services.bouncer.forwarded import parse_forwarded
from services.bouncer.jmrp import parse_jmrp
from services.bouncer.listnotice import parse_list_notice
from services.bouncer.mime import parse_bytes
from services.bouncer.report import Report, ReportKind
from services.bouncer.sesjson import parse_ses
from services.bouncer.textbounce import parse_text_bounce


def parse_message(raw: bytes) -> Report:
    """Parse raw RFC 5322 bytes into a :class:`Report` (never raises on bad mail)."""
    try:
        return parse_parsed(parse_bytes(raw))
    except RecursionError:
        # Parts nested about a thousand deep (message/rfc822 in message/rfc822 ...): the
        # parser, like the standard library's, recurses per level. No bounce looks so.
        return Report(kind=ReportKind.OTHER, parser="too-deep")


def parse_parsed(msg: Message) -> Report:
    """Like :func:`parse_message` for an already parsed message."""
    parsers = (parse_arf, parse_jmrp, _dsn, parse_ses, parse_list_notice, strong_auto_reply)
    fallbacks = (parse_forwarded, parse_carrier_bounce, parse_text_bounce, weak_auto_reply)
    for parser in (*parsers, *fallbacks):
        report = parser(msg)
        if report is not None:
            return dataclasses.replace(report, report_id=_message_id(msg))
    return Report(kind=ReportKind.OTHER, parser="none")


def _dsn(msg: Message) -> Report | None:
    # A DSN whose fields give no diagnostic for a recipient: its notification text may.
    report = parse_dsn(msg)
    return with_notification_words(msg, report) if report is not None else None


def _message_id(msg: Message) -> str:
    """The report's own Message-ID (RFC 5322 3.6.4), brackets kept; "" when absent or
    unreadable (a malformed header is the sender's problem, never ours)."""
    try:
        value = msg.get("Message-ID")
    except (ValueError, TypeError, IndexError):
        return ""
    return str(value or "").strip()[:300]

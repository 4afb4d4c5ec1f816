"""A DSN recipient's reason read from the notification's own words (RFC 3464 2.1, part 1).

Owns filling in what a recipient's delivery-status fields leave out (no Diagnostic-Code and
no words in Status): several MTAs write the reason only in the human-readable first part,
in the same shapes as their non-standard bounces. CommuniGate Pro: "Failed to deliver to
'<a@b>'" and the remote's reply below it; OpenSMTPD: "a@b: Domain does not exist"; Sun/
PMDF messaging servers: "Recipient address: a@b" then the reason. The reported Status
stays the report's (a generic 5.0.0 is not replaced by a code found in prose); only a
missing one is taken from the paragraph. Reading the fields is ``dsn.py``'s, finding an
address's paragraph ``textbounce.py``'s.
"""

from __future__ import annotations

import dataclasses
from email.message import Message

from services.bouncer.report import (
    RecipientStatus,
    Report,
    body_text,
    find_reply_code,
    find_status,
)
from services.bouncer.textbounce import address_context, bounce_words, line_prefix, position


def with_notification_words(msg: Message, report: Report) -> Report:
    """``report`` with each recipient lacking a diagnostic given its notification paragraph."""
    if not any(_wordless(r) for r in report.recipients):
        return report
    text, low = bounce_words(body_text(msg))
    if not text.strip():
        return report
    recipients = tuple(_filled(r, text, low) if _wordless(r) else r for r in report.recipients)
    return dataclasses.replace(report, recipients=recipients)


def _wordless(status: RecipientStatus) -> bool:
    # No diagnostic, and a status that names no subject (RFC 3463 X.0.0 "other or
    # undefined", or none): a "5.1.1" without words is already a reason.
    return not status.diagnostic and status.status[2:] in ("", "0.0")


def _filled(status: RecipientStatus, text: str, low: str) -> RecipientStatus:
    start = position(status.recipient, text, low)
    address = status.recipient
    if start < 0 and status.original_recipient:
        address = status.original_recipient
        start = position(address, text, low)
    words = " ".join(address_context(address, text, start).split())
    if not words:
        return status
    return dataclasses.replace(
        status,
        status=status.status or find_status(words),
        smtp_code=status.smtp_code or find_reply_code(words),
        diagnostic=words[:500],
        context=line_prefix(text, start),
    )

"""Microsoft's junk mail reports (JMRP): complaints that are not RFC 5965 reports.

Owns recognising the complaints Outlook.com/Hotmail sends to a JMRP subscriber: a
``multipart/mixed`` message (no ``message/feedback-report`` part) from Microsoft's report
address, subject "complaint about message from <ip>", with the reported message attached as
``message/rfc822``. Microsoft writes who complained into the attached message's
``X-HmXmrOriginalRecipient`` header; the attached To is the fallback (the VERP return path,
which the intake knows, settles it when both are redacted). RFC 5965 reports are ``arf.py``'s.
"""

from __future__ import annotations

import re
from email.message import Message

from services.bouncer.dsn import original_message_id
from services.bouncer.report import ADDRESS_RE, RecipientStatus, Report, ReportKind, clean_address

# Microsoft's domains; the reporting sender is staff@hotmail.com (or its outlook.com
# counterpart). Any Microsoft user can forward a message as an attachment, so a Microsoft
# sender counts only as "staff@", or with Microsoft's complainant header in the attachment.
_MICROSOFT = re.compile(r"@(?:[a-z0-9-]+\.)*(?:hotmail|outlook|msn|live|microsoft)\.com\b", re.I)
_STAFF = re.compile(r"\bstaff@(?:[a-z0-9-]+\.)*(?:hotmail|outlook)\.com\b", re.I)
_SUBJECT = re.compile(r"^\s*complaint about message from\b", re.I)
_RECIPIENT_HEADER = "X-HmXmrOriginalRecipient"


def parse_jmrp(msg: Message) -> Report | None:
    """The complaint in a Microsoft JMRP message, or ``None`` when ``msg`` is not one."""
    if msg.get_content_type() == "multipart/report":
        return None  # an RFC 3462 report (DSN or ARF): not Microsoft's JMRP form
    reported = _reported_message(msg)
    if reported is None:
        return None
    sender = str(msg.get("From", ""))
    marked = reported.get(_RECIPIENT_HEADER) is not None and bool(_MICROSOFT.search(sender))
    if not (_STAFF.search(sender) or _SUBJECT.search(_subject(msg)) or marked):
        return None
    recipient = _complainant(msg, reported)
    recipients = (RecipientStatus(recipient=recipient, action="complained"),) if recipient else ()
    return Report(
        kind=ReportKind.COMPLAINT,
        recipients=recipients,
        reporting_mta=clean_address(str(msg.get("From", ""))).partition("@")[2].lower(),
        feedback_type="abuse",
        original_message_id=original_message_id(msg),
        parser="jmrp",
    )


def _subject(msg: Message) -> str:
    return str(msg.get("Subject", ""))


def _reported_message(msg: Message) -> Message | None:
    # The report's own subject or sender alone is not enough: a Microsoft user's ordinary
    # mail would match the sender; the attached original is what makes it a report.
    if not msg.is_multipart():
        return None
    for part in msg.walk():
        if part.get_content_type() == "message/rfc822" and part.is_multipart():
            inner = part.get_payload(0)
            if isinstance(inner, Message):
                return inner
    return None


def _complainant(msg: Message, reported: Message) -> str:
    for header in (reported.get(_RECIPIENT_HEADER), msg.get(_RECIPIENT_HEADER)):
        address = clean_address(str(header or ""))
        if "@" in address:
            return address
    to = ADDRESS_RE.findall(str(reported.get("To", "")))
    # Only an unambiguous To names the complainant; several could be anyone of them.
    return to[0] if len(to) == 1 else ""

"""RFC 5965 Abuse Reporting Format: feedback reports become ``complained``.

Owns recognising ``multipart/report; report-type=feedback-report`` and reading who
complained: the original recipient (RFC 6650 asks providers to redact it, so it is often
only in the attached original's To: or in our VERP return path, which the intake knows).
It does not decide suppression.
"""

from __future__ import annotations

from email.message import Message

from services.bouncer.dsn import clean_mta, original_message_id, parse_field_blocks
from services.bouncer.report import RecipientStatus, Report, ReportKind, clean_address, decode_part


def parse_arf(msg: Message) -> Report | None:
    """The complaint in ``msg``, or ``None`` when it is not a feedback report."""
    part = _feedback_part(msg)
    if part is None:
        return None
    fields: dict[str, str] = {}
    for block in parse_field_blocks(_part_text(part)):
        for key, value in block.items():
            fields.setdefault(key, value)
    recipient = clean_address(fields.get("original-rcpt-to", ""))
    if "@" not in recipient:
        recipient = _original_to(msg)
    recipients = (RecipientStatus(recipient=recipient, action="complained"),) if recipient else ()
    return Report(
        kind=ReportKind.COMPLAINT,
        recipients=recipients,
        reporting_mta=clean_mta(fields.get("reporting-mta", "")),
        feedback_type=fields.get("feedback-type", "abuse").strip().lower(),
        original_message_id=original_message_id(msg),
        parser="arf",
    )


def _feedback_part(msg: Message) -> Message | None:
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            return part
    return None


def _part_text(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):  # parsed like message/delivery-status: one Message per block
        return "\n\n".join(
            "\n".join(f"{k}: {v}" for k, v in block.items())
            for block in payload
            if isinstance(block, Message)
        )
    return decode_part(part)


def _original_to(msg: Message) -> str:
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822" and part.is_multipart():
            inner = part.get_payload(0)
            if isinstance(inner, Message) and inner.get("To"):
                return clean_address(str(inner["To"]))
        elif ctype == "text/rfc822-headers":
            for block in parse_field_blocks(decode_part(part))[:1]:
                if "to" in block:
                    return clean_address(block["to"])
    return ""

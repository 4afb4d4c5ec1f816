"""Amazon SES bounce and complaint notifications, delivered by SNS as JSON mail.

Owns reading the SES notification (``notificationType`` Bounce, Complaint or Delivery; the
event-publishing form names it ``eventType``) out of a message body: either the SNS envelope
JSON (the ``email-json`` subscription: ``{"Type": "Notification", "Message": "<the SES
JSON as a string>", ...}``) or the SES JSON itself (the ``email`` subscription, followed by
SNS's unsubscribe footer). Bounced recipients keep SES's own status and Diagnostic-Code;
when SES gives none, the status comes from ``bounceType``/``bounceSubType``. It does not
read MIME reports (``dsn.py``, ``arf.py``) or classify.
"""

from __future__ import annotations

import json
from email.message import Message
from typing import Any

from services.bouncer.dsn import clean_mta, strip_diagnostic_type
from services.bouncer.report import (
    RecipientStatus,
    Report,
    ReportKind,
    clean_address,
    decode_part,
    find_reply_code,
    find_status,
)

# Where SES's JSON starts in the first few kilobytes: anything else is not a notification.
_SCAN = 4096
# SES omits the status for bounces it decided itself (its suppression list, a mailbox it
# knows is full); these are the RFC 3463 codes its documented sub-types stand for.
_SUBTYPE_STATUS = {
    ("permanent", "noemail"): "5.1.1",
    ("permanent", "suppressed"): "5.1.1",
    ("permanent", "onaccountsuppressionlist"): "5.1.1",
    ("transient", "mailboxfull"): "4.2.2",
    ("transient", "messagetoolarge"): "4.3.4",
    ("transient", "contentrejected"): "4.7.1",
    ("transient", "attachmentrejected"): "4.7.1",
}
_TYPE_STATUS = {"permanent": "5.0.0", "transient": "4.0.0"}
_TYPE_ACTION = {"permanent": "failed", "transient": "delayed"}


def parse_ses(msg: Message) -> Report | None:
    """The SES notification in ``msg``'s body as a report, or ``None`` when there is none."""
    text = _first_text(msg)
    if not text:
        return None
    notification = _notification(text)
    if notification is None:
        return None
    kind = str(notification.get("notificationType") or notification.get("eventType") or "")
    mail = _object(notification.get("mail"))
    message_id = _original_message_id(mail)
    if kind.lower() == "bounce":
        return _bounce(_object(notification.get("bounce")), message_id)
    if kind.lower() == "complaint":
        return _complaint(_object(notification.get("complaint")), message_id)
    # Delivery, Send, Open, ...: SES telling how it went, never a failure.
    return Report(kind=ReportKind.OTHER, original_message_id=message_id, parser="ses")


def _first_text(msg: Message) -> str:
    # SNS sends one text/plain body; only the first text part can hold the notification,
    # and decoding just that one keeps this parser cheap for the many messages it refuses.
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            text = decode_part(part)
            return text if "{" in text[:_SCAN] else ""
        if part.get_content_maintype() not in ("multipart", "text"):
            return ""
    return ""


def _notification(text: str) -> dict[str, Any] | None:
    start = text.find("{", 0, _SCAN)
    if start < 0:
        return None
    decoder = json.JSONDecoder()
    try:
        outer, _ = decoder.raw_decode(text, start)
    except ValueError:
        return None
    if not isinstance(outer, dict):
        return None
    inner: Any = outer
    if outer.get("Type") == "Notification" and isinstance(outer.get("Message"), str):
        # SNS email-json: the SES notification is a JSON string inside the envelope.
        try:
            inner = json.loads(outer["Message"])
        except ValueError:
            return None
    if not isinstance(inner, dict):
        return None
    if not (inner.get("notificationType") or inner.get("eventType")):
        return None
    return inner


def _bounce(bounce: dict[str, Any], message_id: str) -> Report:
    bounce_type = str(bounce.get("bounceType", "")).lower()
    sub_type = str(bounce.get("bounceSubType", "")).lower()
    fallback = _SUBTYPE_STATUS.get((bounce_type, sub_type)) or _TYPE_STATUS.get(bounce_type, "")
    recipients: list[RecipientStatus] = []
    for entry in _objects(bounce.get("bouncedRecipients")):
        address = clean_address(str(entry.get("emailAddress", "")))
        if "@" not in address:
            continue
        diagnostic = strip_diagnostic_type(str(entry.get("diagnosticCode", "")))
        status = find_status(str(entry.get("status", ""))) or find_status(diagnostic) or fallback
        recipients.append(
            RecipientStatus(
                recipient=address,
                # SES's bounceType is its verdict after its own retries: Transient means
                # it may work later, whatever the remote's last code was.
                action=_TYPE_ACTION.get(bounce_type, str(entry.get("action", "")).lower()),
                status=status,
                smtp_code=find_reply_code(diagnostic),
                diagnostic=diagnostic or f"SES {bounce_type} bounce ({sub_type})",
            )
        )
    return Report(
        kind=ReportKind.DSN,
        recipients=tuple(recipients),
        reporting_mta=clean_mta(str(bounce.get("reportingMTA", ""))),
        original_message_id=message_id,
        parser="ses",
    )


def _complaint(complaint: dict[str, Any], message_id: str) -> Report:
    recipients = tuple(
        RecipientStatus(recipient=address, action="complained")
        for address in (
            clean_address(str(e.get("emailAddress", "")))
            for e in _objects(complaint.get("complainedRecipients"))
        )
        if "@" in address
    )
    feedback = str(complaint.get("complaintFeedbackType") or "abuse").strip().lower()
    return Report(
        kind=ReportKind.COMPLAINT,
        recipients=recipients,
        feedback_type=feedback,
        original_message_id=message_id,
        parser="ses",
    )


def _original_message_id(mail: dict[str, Any]) -> str:
    # The original's own Message-ID header, when SES included the headers; mail.messageId
    # is SES's id, not the header.
    common = _object(mail.get("commonHeaders"))
    value = common.get("messageId")
    if isinstance(value, str):
        return value.strip()
    for header in _objects(mail.get("headers")):
        if str(header.get("name", "")).lower() == "message-id":
            return str(header.get("value", "")).strip()
    return ""


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _objects(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []

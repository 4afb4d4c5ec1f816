"""RFC 3464 DSNs to the original sender when a message finally fails.

Owns whether a DSN is due (not for the null sender, RFC 5321 4.5.5 / RFC 3464 2.3: no DSN
for a DSN; not for bulk mail unless the policy says so) and building it: a
``multipart/report; report-type=delivery-status`` from the configured postmaster with a
human part, the per-recipient fields and the original headers (``text/rfc822-headers``).
The DSN is published as a :class:`Delivery` on ``postline.outbound`` with the null return
path; the deliverer sends it like any message. It does not parse DSNs (``dsn.py``).
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime, formatdate, make_msgid

from services.bouncer.config import DsnPolicy
from shared.wire.records import Delivery, Event, EventKind, SmtpReply, new_id
from shared.wire.topics import OUTBOUND, OutRecord

_BULK_HEADER = re.compile(
    rb"^(precedence:\s*(bulk|list|junk)|list-id:|list-unsubscribe:)", re.I | re.M
)
_DAEMON = re.compile(r"^(mailer-daemon|postmaster)@", re.I)


class DsnGenerator:
    """Builds the DSN Delivery for a final failure, following the configured policy."""

    def __init__(self, policy: DsnPolicy) -> None:
        self._policy = policy

    def due(self, event: Event) -> bool:
        """Whether ``event`` calls for a DSN to its sender."""
        if not self._policy.enabled or not event.sender or _DAEMON.match(event.sender):
            return False  # null sender: the failed message was itself a DSN (no loops)
        if "@" not in event.sender:
            return False
        bulk = (
            event.bulk
            or event.tags.get("bulk") in ("1", "true")
            or bool(_BULK_HEADER.search(event.headers))
        )
        return self._policy.bulk or not bulk

    def for_event(self, event: Event) -> OutRecord | None:
        """The DSN Delivery on ``postline.outbound``, or ``None`` when none is due."""
        if event.kind not in (EventKind.BOUNCED, EventKind.EXPIRED) or not self.due(event):
            return None
        at = event.at or time.time()
        data = build_dsn(event, self._policy, at)
        delivery = Delivery(
            message_id=new_id(),
            delivery_id=new_id(),
            domain=event.sender.rpartition("@")[2].lower(),
            mail_from="",  # RFC 3464 2: a DSN has the null reverse-path
            rcpt_to=(event.sender,),
            data=data,
            submitted_at=at,
            expires_at=at + float(self._policy.expires_after),
            is_dsn=True,
            tags={"dsn_for": event.message_id},
            tenant=event.tenant,  # the DSN goes back to the tenant's own sender
            # RFC 8689 4.3: the DSN of a REQUIRETLS message holds its headers, so it is
            # sent with REQUIRETLS as well.
            require_tls=event.requiretls,
            requiretls=event.requiretls,
        )
        return OUTBOUND.out(delivery)


def build_dsn(event: Event, policy: DsnPolicy, at: float) -> bytes:
    """The DSN message bytes (CRLF line ends) for one failed recipient."""
    boundary = f"=_postline_{uuid.uuid4().hex}"
    reply = event.reply or SmtpReply(code=0, enhanced="5.0.0", text="delivery failed")
    status = reply.enhanced or ("4.4.7" if event.kind is EventKind.EXPIRED else "5.0.0")
    expired = event.kind is EventKind.EXPIRED
    domain = policy.postmaster.rpartition("@")[2] or policy.reporting_mta
    head = [
        f"From: Mail Delivery System <{policy.postmaster}>",
        f"To: <{event.sender}>",
        "Subject: Undelivered Mail Returned to Sender",
        f"Date: {formatdate(at, localtime=False)}",
        f"Message-ID: {make_msgid('dsn', domain=domain)}",
        "Auto-Submitted: auto-replied",  # RFC 3834 5: never answer this automatically
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
    ]
    human = [
        "This is the mail system at " + policy.reporting_mta + ".",
        "",
        "Your message could not be delivered to " + event.recipient + ".",
        "The delivery time limit was reached." if expired else "The remote server said:",
        f"    {reply}" if str(reply).strip() else "",
    ]
    fields = _status_fields(event, policy, reply, status, at)
    parts = [
        _part("text/plain; charset=utf-8", "\r\n".join(human)),
        _part("message/delivery-status", fields),
    ]
    if policy.include_headers and event.headers:
        text = event.headers.decode("utf-8", errors="replace").replace("\r\n", "\n")
        parts.append(_part("text/rfc822-headers; charset=utf-8", text.strip("\n")))
    body = "".join(f"--{boundary}\r\n{p}\r\n" for p in parts) + f"--{boundary}--\r\n"
    message = "\r\n".join(head) + "\r\n\r\n" + "This is a MIME delivery status report.\r\n" + body
    return message.encode("utf-8")


def _status_fields(
    event: Event, policy: DsnPolicy, reply: SmtpReply, status: str, at: float
) -> str:
    when = format_datetime(datetime.fromtimestamp(at, UTC))
    per_message = [
        f"Reporting-MTA: dns; {policy.reporting_mta}",
        f"X-Postline-Id: {event.message_id}",
    ]
    per_recipient = [
        f"Final-Recipient: rfc822; {event.recipient}",
        "Action: failed",  # RFC 3464 2.3.3: also for an expired message (we gave up)
        f"Status: {status}",
    ]
    if event.mx:
        per_recipient.append(f"Remote-MTA: dns; {event.mx}")
    if reply.code:
        per_recipient.append(f"Diagnostic-Code: smtp; {_one_line(str(reply))}")
    per_recipient.append(f"Last-Attempt-Date: {when}")
    return "\r\n".join(per_message) + "\r\n\r\n" + "\r\n".join(per_recipient) + "\r\n"


def _part(content_type: str, text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    return f"Content-Type: {content_type}\r\n\r\n{text}"


def _one_line(text: str) -> str:
    return " ".join(text.split())[:900]

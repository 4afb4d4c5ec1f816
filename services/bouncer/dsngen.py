"""RFC 3464 DSNs to the original sender: failures, and the notices the sender asked for.

Owns whether a DSN is due and building it. Due: never for the null sender (RFC 5321 4.5.5 /
RFC 3464 2.3: no DSN for a DSN), not for bulk mail unless the policy says so, and as the
recipient's NOTIFY (RFC 3461 4.1) says: NEVER, none at all; FAILURE (also when NOTIFY was
not given) a ``failed`` DSN for a bounce or an expiry; DELAY a ``delayed`` DSN on the
first deferral only; SUCCESS a ``relayed`` DSN once an MX that does not offer DSN took the
message (RFC 3461 5.2.2; an MX that offers DSN got the parameters and owes the notice
itself, 5.2.1, so none comes from here). Built: a
``multipart/report; report-type=delivery-status`` from the configured postmaster with a
human part, the per-message fields (with ``Original-Envelope-Id``, the ENVID), the
recipient's fields (with ``Original-Recipient``, the ORCPT) and the original headers
(``text/rfc822-headers``). The events carry the header block only, never the body, so
RET=FULL gets the headers and a sentence saying so. The DSN is published as a
:class:`Delivery` on ``postline.outbound`` with the null return path; the deliverer sends
it like any message. It does not parse DSNs (``dsn.py``).

Internationalised addresses (RFC 6533): a recipient that is not printable ASCII is written
``Final-Recipient: utf-8; <utf-8-addr-xtext>`` (``utf8addr.py``) and any non-ASCII text part
is quoted-printable, so the DSN itself is 7-bit and reaches any sender's MX; only a UTF-8
sender address (its ``To:`` and RCPT) needs SMTPUTF8, and the DSN Delivery says so.
"""

from __future__ import annotations

import binascii
import re
import time
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime, formatdate, make_msgid

from services.bouncer.config import DsnPolicy
from services.bouncer.utf8addr import address_field
from shared import dsnparams
from shared.address import AddressError, parse_mailbox
from shared.wire.records import Delivery, Event, EventKind, SmtpReply, new_id
from shared.wire.topics import OUTBOUND, OutRecord

_BULK_HEADER = re.compile(
    rb"^(precedence:\s*(bulk|list|junk)|list-id:|list-unsubscribe:)", re.I | re.M
)
_DAEMON = re.compile(r"^(mailer-daemon|postmaster)@", re.I)
#: The stage whose events report our own attempts (the bouncer's come from reports).
_DELIVERER = "deliverer"


def action(event: Event) -> str:
    """The RFC 3464 2.3.3 action a DSN about ``event`` reports ("" when it calls for none):
    ``failed`` for a bounce or an expiry, ``delayed`` for the first deferral, ``relayed``
    for a delivery to an MX that did not take the DSN duty over."""
    if event.kind in (EventKind.BOUNCED, EventKind.EXPIRED):
        return "failed"
    if event.stage != _DELIVERER:
        return ""  # a report's event: the remote MTA's DSN already told the sender
    if event.kind is EventKind.DEFERRED and event.attempt == 1:
        return "delayed"
    if event.kind is EventKind.DELIVERED and not event.dsn_passed:
        return "relayed"
    return ""


#: Which NOTIFY word asks for each action's DSN (RFC 3461 4.1).
_ASKED_BY = {"failed": dsnparams.FAILURE, "delayed": dsnparams.DELAY, "relayed": dsnparams.SUCCESS}


class DsnGenerator:
    """Builds the DSN Delivery for a final failure, following the configured policy."""

    def __init__(self, policy: DsnPolicy) -> None:
        self._policy = policy

    def due(self, event: Event) -> bool:
        """Whether ``event`` calls for a DSN to its sender."""
        if not self._policy.enabled or not event.sender or _DAEMON.match(event.sender):
            return False  # null sender: the failed message was itself a DSN (no loops)
        try:
            parse_mailbox(event.sender)
        except AddressError:
            return False  # not a mailbox: nothing could put it on a RCPT line
        word = _ASKED_BY.get(action(event))
        if word is None or not dsnparams.notifies(event.dsn_notify, word):
            return False
        bulk = (
            event.bulk
            or event.tags.get("bulk") in ("1", "true")
            or bool(_BULK_HEADER.search(event.headers))
        )
        return self._policy.bulk or not bulk

    def for_event(self, event: Event) -> OutRecord | None:
        """The DSN Delivery on ``postline.outbound``, or ``None`` when none is due."""
        if not self.due(event):
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
            smtputf8=not event.sender.isascii(),  # RFC 6531: a UTF-8 To: and RCPT
            body_8bit=not data.isascii(),
            tags={"dsn_for": event.message_id},
            tenant=event.tenant,  # the DSN goes back to the tenant's own sender
            # RFC 8689 4.3: the DSN of a REQUIRETLS message holds its headers, so it is
            # sent with REQUIRETLS as well.
            require_tls=event.requiretls,
            requiretls=event.requiretls,
        )
        return OUTBOUND.out(delivery)


#: Per action: the Subject and the human part's first sentence (``{rcpt}``: the recipient).
_WORDING = {
    "failed": (
        "Undelivered Mail Returned to Sender",
        "Your message could not be delivered to {rcpt}.",
    ),
    "delayed": (
        "Delayed Mail (still being retried)",
        "Your message to {rcpt} has not been delivered yet; delivery will be retried.",
    ),
    "relayed": (
        "Successful Mail Relay Report",
        "Your message to {rcpt} was handed to the recipient's mail server, which does not "
        "offer delivery notifications: no further notice will come.",
    ),
}
#: The status when the event has none (RFC 3463 classes: 2 success, 4 delay, 5 failure).
_DEFAULT_STATUS = {"failed": "5.0.0", "delayed": "4.0.0", "relayed": "2.0.0"}


def build_dsn(event: Event, policy: DsnPolicy, at: float) -> bytes:
    """The DSN message bytes (CRLF line ends) for one recipient's event."""
    boundary = f"=_postline_{uuid.uuid4().hex}"
    act = action(event) or "failed"
    expired = event.kind is EventKind.EXPIRED
    failed = "delivery failed" if act == "failed" else ""
    reply = event.reply or SmtpReply(code=0, enhanced=_DEFAULT_STATUS[act], text=failed)
    status = reply.enhanced or ("4.4.7" if expired else _DEFAULT_STATUS[act])
    domain = policy.postmaster.rpartition("@")[2] or policy.reporting_mta
    subject, opening = _WORDING[act]
    head = [
        f"From: Mail Delivery System <{policy.postmaster}>",
        f"To: <{event.sender}>",
        f"Subject: {subject}",
        f"Date: {formatdate(at, localtime=False)}",
        f"Message-ID: {make_msgid('dsn', domain=domain)}",
        "Auto-Submitted: auto-replied",  # RFC 3834 5: never answer this automatically
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
    ]
    human = [
        "This is the mail system at " + policy.reporting_mta + ".",
        "",
        opening.format(rcpt=_printable(event.recipient)),
        "The delivery time limit was reached." if expired else "The remote server said:",
        f"    {reply}" if str(reply).strip() else "",
    ]
    headers = _returned_headers(event, policy, act)
    if headers and act == "failed" and event.dsn_ret == "FULL":
        # RFC 3461 4.3 asked for the whole message; the events carry its header block only
        # (a bounce must not hold every body on the events topic), so that is what returns.
        human += ["", "The full message was asked for (RET=FULL); only its header is kept."]
    fields = _status_fields(event, policy, reply, status, at, act=act)
    parts = [
        _part("text/plain; charset=utf-8", "\r\n".join(human)),
        _part("message/delivery-status", fields),
    ]
    if headers:
        text = headers.decode("utf-8", errors="replace").replace("\r\n", "\n")
        parts.append(_part("text/rfc822-headers; charset=utf-8", text.strip("\n")))
    body = "".join(f"--{boundary}\r\n{p}\r\n" for p in parts) + f"--{boundary}--\r\n"
    message = "\r\n".join(head) + "\r\n\r\n" + "This is a MIME delivery status report.\r\n" + body
    return message.encode("utf-8")


def _returned_headers(event: Event, policy: DsnPolicy, act: str) -> bytes:
    """The header block the DSN returns: a failure's when RET asked for it (HDRS or FULL,
    RFC 3461 4.3) or the policy includes headers; a notice's as the policy says."""
    if act == "failed" and event.dsn_ret:
        return event.headers
    return event.headers if policy.include_headers else b""


def _status_fields(
    event: Event, policy: DsnPolicy, reply: SmtpReply, status: str, at: float, *, act: str
) -> str:
    when = format_datetime(datetime.fromtimestamp(at, UTC))
    per_message = [f"Original-Envelope-Id: {event.dsn_envid}"] if event.dsn_envid else []
    per_message += [
        f"Reporting-MTA: dns; {policy.reporting_mta}",
        f"X-Postline-Id: {event.message_id}",
    ]
    per_recipient = [f"Original-Recipient: {event.dsn_orcpt}"] if event.dsn_orcpt else []
    per_recipient += [
        f"Final-Recipient: {address_field(event.recipient)}",
        f"Action: {act}",  # RFC 3464 2.3.3: "failed" also for an expired message (we gave up)
        f"Status: {status}",
    ]
    if event.mx:
        per_recipient.append(f"Remote-MTA: dns; {event.mx}")
    if reply.code:
        per_recipient.append(f"Diagnostic-Code: smtp; {_one_line(str(reply))}")
    per_recipient.append(f"Last-Attempt-Date: {when}")
    return "\r\n".join(per_message) + "\r\n\r\n" + "\r\n".join(per_recipient) + "\r\n"


def _part(content_type: str, text: str) -> str:
    """A body part; quoted-printable when ``text`` is not ASCII, so the DSN stays 7-bit."""
    text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    if text.isascii():
        return f"Content-Type: {content_type}\r\n\r\n{text}"
    encoded = binascii.b2a_qp(text.encode("utf-8"), header=False)
    if b"\r\n" not in encoded:  # b2a_qp breaks lines as the input's first line break does
        encoded = encoded.replace(b"\n", b"\r\n")
    return (
        f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        + encoded.decode("ascii")
    )


def _printable(text: str) -> str:
    """``text`` without control characters (a recipient may hold one: it was refused)."""
    return "".join(c if c.isprintable() else f"\\x{{{ord(c):02X}}}" for c in text)


def _one_line(text: str) -> str:
    """One line of ASCII: message/delivery-status is 7-bit (RFC 3464 2.1; a UTF-8 reply
    text of an SMTPUTF8 server would need message/global-delivery-status)."""
    return " ".join(text.split())[:900].encode("ascii", "backslashreplace").decode("ascii")

"""A report mailed to a ``mailto:`` rua (RFC 8460 5.3), submitted through Postline itself.

Owns the message: ``multipart/report; report-type="tlsrpt"`` with a human part and the
gzip report as an ``application/tlsrpt+gzip`` attachment named per RFC 8460 5.1, the
Subject ``Report Domain: <d> Submitter: <s> Report-ID: <<id>>`` and the
``TLS-Report-Domain`` and ``TLS-Report-Submitter`` fields. It becomes a
:class:`~shared.wire.records.Submission` on ``postline.submitted``, so the signer
DKIM-signs it with the key of the From domain (RFC 8460 5.3 requires the signature) and
the deliverer sends it like any message. Pure apart from the message id's randomness.
"""

from __future__ import annotations

import base64
import uuid
from email.utils import formatdate, make_msgid

from shared.wire.records import ClientInfo, Submission, new_id

#: ``ClientInfo.listener`` of the reports we submit (tells them apart in the events).
LISTENER = "bouncer.tlsrpt"


def build_message(
    *,
    from_address: str,
    to: str,
    domain: str,
    submitter: str,
    rid: str,
    filename: str,
    report: bytes,
    at: float,
) -> bytes:
    """The report message (CRLF line ends) for the rua address ``to``."""
    boundary = f"=_tlsrpt_{uuid.uuid4().hex}"
    msgid_domain = from_address.rpartition("@")[2]
    head = [
        f"From: {from_address}",
        f"To: {to}",
        f"Subject: Report Domain: {domain} Submitter: {submitter} Report-ID: <{rid}>",
        f"Date: {formatdate(at, localtime=False)}",
        f"Message-ID: {make_msgid('tlsrpt', domain=msgid_domain)}",
        f"TLS-Report-Domain: {domain}",
        f"TLS-Report-Submitter: {submitter}",
        "Auto-Submitted: auto-generated",  # RFC 3834: no auto-reply should answer it
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type="tlsrpt"; boundary="{boundary}"',
    ]
    human = (
        f"This is an aggregate TLS report from {submitter} for {domain} (RFC 8460).\r\n"
        f"Report-ID: {rid}\r\n"
    )
    encoded = base64.encodebytes(report).decode("ascii").replace("\n", "\r\n")
    parts = [
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + human,
        f'Content-Type: application/tlsrpt+gzip; name="{filename}"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="{filename}"\r\n\r\n' + encoded,
    ]
    body = "".join(f"--{boundary}\r\n{part}\r\n" for part in parts) + f"--{boundary}--\r\n"
    text = "\r\n".join(head) + "\r\n\r\nThis is a multipart TLS report.\r\n\r\n" + body
    return text.encode("utf-8")  # domains are A-labels: ASCII in practice


def submission(*, from_address: str, to: str, message: bytes, at: float) -> Submission:
    """The message as a Submission from ``from_address`` to ``to``, for the signer."""
    return Submission(
        id=new_id(),
        received_at=at,
        client=ClientInfo(ip="127.0.0.1", helo="localhost", listener=LISTENER),
        mail_from=from_address,
        rcpt_to=(to,),
        data=message,
        tags={"tlsrpt": "1"},
    )

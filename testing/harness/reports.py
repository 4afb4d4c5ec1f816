"""What remote mail systems send back to a bounce domain, built from a copy they received.

- :func:`dsn`: an asynchronous delivery status notification (RFC 3464), as Postfix writes it
  when a mailbox turns out not to exist after the message was accepted;
- :func:`arf`: a feedback report (RFC 5965) for a recipient who clicked "this is spam".

Both quote the received copy's headers the way real systems do, and are addressed to the
copy's envelope sender (the VERP return path), as their senders would address them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime


def _now() -> str:
    return format_datetime(datetime.now(UTC))


def _headers(copy: bytes) -> str:
    return copy.partition(b"\r\n\r\n")[0].decode("utf-8", errors="replace")


def dsn(return_path: str, recipient: str, copy: bytes, remote_mta: str) -> bytes:
    """A ``failed`` DSN for ``recipient`` (5.1.1 user unknown) to ``return_path``."""
    boundary = "harness-dsn-boundary"
    text = f"""\
From: MAILER-DAEMON@{remote_mta} (Mail Delivery System)
To: {return_path}
Subject: Undelivered Mail Returned to Sender
Date: {_now()}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset=us-ascii

<{recipient}>: host {remote_mta} said: 550 5.1.1 User unknown (in reply to end of DATA)

--{boundary}
Content-Type: message/delivery-status

Reporting-MTA: dns; {remote_mta}

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: failed
Status: 5.1.1
Remote-MTA: dns; {remote_mta}
Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User unknown

--{boundary}
Content-Type: text/rfc822-headers

{_headers(copy)}

--{boundary}--
"""
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def arf(return_path: str, recipient: str, copy: bytes, reporter: str) -> bytes:
    """An ``abuse`` feedback report about the copy ``recipient`` got, to ``return_path``."""
    boundary = "harness-arf-boundary"
    text = f"""\
From: Feedback Loop <feedback@{reporter}>
To: {return_path}
Subject: FW: complaint
Date: {_now()}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset=us-ascii

This is an email abuse report for a message received on {_now()}.

--{boundary}
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: Harness-FBL/1.0
Version: 1
Original-Mail-From: <{return_path}>
Original-Rcpt-To: <{recipient}>
Reporting-MTA: dns; {reporter}

--{boundary}
Content-Type: message/rfc822

{copy.decode("utf-8", errors="replace").replace(chr(13), "")}
--{boundary}--
"""
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()

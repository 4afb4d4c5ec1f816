"""Every SMTP reply ingest sends, as a named constant (RFC 5321 codes, RFC 3463 enhanced codes).

This module owns the reply texts and the translation of aiosmtpd's built-in replies (which
carry no enhanced status code) into ours, since we advertise ENHANCEDSTATUSCODES (RFC 2034).
It does not decide which reply applies: the policy checks and the session do.
"""

from __future__ import annotations

import time

from shared.wire.records import SmtpReply as Reply

__all__ = ["Reply"]

OK = Reply(code=250, enhanced="2.0.0", text="Ok")
SENDER_OK = Reply(code=250, enhanced="2.1.0", text="Sender ok")
RCPT_OK = Reply(code=250, enhanced="2.1.5", text="Recipient ok")

# Connection phase.
TOO_MANY_SESSIONS = Reply(code=421, enhanced="4.7.0", text="Too many connections from your address")
SHUTTING_DOWN = Reply(code=421, enhanced="4.3.2", text="Service shutting down, try again later")
TIMEOUT = Reply(code=421, enhanced="4.4.2", text="Timeout exceeded, closing connection")
AUTH_THROTTLED = Reply(code=421, enhanced="4.7.0", text="Too many authentication failures")
TOO_MANY_ERRORS = Reply(code=421, enhanced="4.7.0", text="Too many errors")

# Any command (RFC 5321 4.1.1: command lines are printable text).
CONTROL_CHARACTER = Reply(
    code=501, enhanced="5.5.2", text="Syntax error: control character in command"
)

# AUTH (RFC 4954).
AUTH_OK = Reply(code=235, enhanced="2.7.0", text="Authentication successful")
AUTH_INVALID = Reply(code=535, enhanced="5.7.8", text="Authentication credentials invalid")
AUTH_NEEDS_TLS = Reply(
    code=538, enhanced="5.7.11", text="Encryption required for requested authentication mechanism"
)
AUTH_REQUIRED = Reply(code=530, enhanced="5.7.0", text="Authentication required")

# MAIL FROM and RCPT TO.
#: RFC 5321 4.1.2 Path grammar not met; 501 "syntax error in parameters", RFC 3463 X.1.3
#: "bad mailbox address syntax" (aiosmtpd's own "553 5.1.3" says "mailbox not allowed").
BAD_ADDRESS = Reply(code=501, enhanced="5.1.3", text="Bad address syntax")
NEEDS_SMTPUTF8 = Reply(code=553, enhanced="5.6.7", text="Non-ASCII address requires SMTPUTF8")
#: RFC 8689 4: REQUIRETLS on MAIL FROM is only valid in a TLS session (we advertise it in
#: none other); X.7.10 "encryption needed" (RFC 5248's registry).
REQUIRETLS_NEEDS_TLS = Reply(code=530, enhanced="5.7.10", text="REQUIRETLS needs TLS")
RATE_LIMITED = Reply(code=450, enhanced="4.7.1", text="Message rate limit exceeded, try later")
TOO_BIG = Reply(code=552, enhanced="5.3.4", text="Message size exceeds fixed maximum")


def bad_dsn_parameter(problem: str) -> Reply:
    """``501 5.5.4`` (RFC 3463 "invalid command arguments") for a DSN parameter that does
    not follow RFC 3461 4 (``shared.dsnparams``), naming the problem."""
    return Reply(code=501, enhanced="5.5.4", text=f"Bad DSN parameter: {problem}")


# RCPT TO.
RELAY_DENIED = Reply(code=554, enhanced="5.7.1", text="Relay access denied")
TOO_MANY_RECIPIENTS = Reply(code=452, enhanced="4.5.3", text="Too many recipients")
SUPPRESSED = Reply(code=550, enhanced="5.1.1", text="Recipient is on the suppression list")


# End of DATA: the content scanner (services/ingest/scanning). The reply gives a reference
# (the message id: the operator finds the verdict in its ``scanned`` event), never the
# scanner's symbols, which would teach a spammer what to change.
SCANNER_UNAVAILABLE = Reply(
    code=451, enhanced="4.7.0", text="Content scanner unavailable, try again later"
)
TOO_BIG_TO_SCAN = Reply(code=552, enhanced="5.3.4", text="Message too big for the content scanner")


def content_rejected(reference: str) -> Reply:
    """``550 5.7.1``: the scanner's verdict is reject."""
    return Reply(
        code=550, enhanced="5.7.1", text=f"Message refused by content policy (ref {reference})"
    )


def content_deferred(reference: str) -> Reply:
    """``451 4.7.1``: the scanner asks for the message to come back later (soft reject)."""
    text = f"Message deferred by content policy, try again later (ref {reference})"
    return Reply(code=451, enhanced="4.7.1", text=text)


def sender_not_allowed(domain: str) -> Reply:
    """``550 5.7.1`` naming the envelope sender domain the user may not use."""
    return Reply(code=550, enhanced="5.7.1", text=f"Sender domain {domain} not allowed for you")


def from_not_allowed(domain: str) -> Reply:
    """``550 5.7.1`` naming the From header domain the user may not use."""
    return Reply(
        code=550, enhanced="5.7.1", text=f"From header domain {domain} not allowed for you"
    )


def sender_header_not_allowed(domain: str) -> Reply:
    """``550 5.7.1`` naming the Sender header domain the user may not use."""
    return Reply(
        code=550, enhanced="5.7.1", text=f"Sender header domain {domain} not allowed for you"
    )


# A tenant's state and limits (shared.tenant_limits): the reply names the limit, never
# another tenant's data. 4xx for what frees up (the client retries), 5xx for a decision.
TENANT_SESSIONS = Reply(code=454, enhanced="4.7.0", text="Too many sessions for this account")
LIMITS_UNAVAILABLE = Reply(code=451, enhanced="4.3.0", text="Limits unavailable, try again later")
TENANT_TOO_MANY_RECIPIENTS = Reply(
    code=452, enhanced="4.5.3", text="Too many recipients for this account"
)
TENANT_TOO_BIG = Reply(code=552, enhanced="5.3.4", text="Message too big for this account")


def tenant_paused(why: str, defer: bool) -> Reply:
    """A paused or disabled tenant: ``550 5.7.1`` (or ``451 4.7.1`` with the defer policy)
    with the operator's reason, so the business sees why without a support ticket."""
    text = "sending paused for this account" + (f": {why}" if why else "")
    if defer:
        return Reply(code=451, enhanced="4.7.1", text=text)
    return Reply(code=550, enhanced="5.7.1", text=text)


def credential_held(refusal: str, reference: str) -> Reply:
    """A held credential (compromised-account detection, or an operator's hold):
    ``451 4.7.1`` so the client's queue keeps the mail until the operator releases it; the
    reason, never the figures (they would teach a spammer the thresholds), and a reference
    (the rejected event's message id) for the provider to find the event."""
    return Reply(code=451, enhanced="4.7.1", text=f"{refusal} (ref {reference})")


def domain_paused(domain: str, why: str, defer: bool) -> Reply:
    """A paused or disabled sending domain of the tenant (a reputation pause of one domain,
    the tenant's others still send): ``550 5.7.1`` (``451 4.7.1`` with the defer policy)
    naming the domain and the reason."""
    text = f"sending paused for domain {domain}" + (f": {why}" if why else "")
    if defer:
        return Reply(code=451, enhanced="4.7.1", text=text)
    return Reply(code=550, enhanced="5.7.1", text=text)


def over_rate(rule: str, retry_after: float) -> Reply:
    """``450 4.7.1`` (RFC 3463 X.7.1 "delivery not authorized") naming the rate and when it
    frees up; the client's queue retries."""
    seconds = max(1, round(retry_after))
    return Reply(
        code=450,
        enhanced="4.7.1",
        text=f"Sending rate of this account exceeded ({rule}), retry in {seconds}s",
    )


def quota_exhausted(rule: str, reset_at: float, reject: bool) -> Reply:
    """A calendar quota used up: ``452 4.5.3`` (the client keeps the mail until the window
    resets) or ``550 5.7.1`` with the reject policy; the reset time in UTC, RFC 3339."""
    reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(reset_at))
    text = f"Quota of this account exhausted ({rule}), resets at {reset}"
    if reject:
        return Reply(code=550, enhanced="5.7.1", text=text)
    return Reply(code=452, enhanced="4.5.3", text=text)


# DATA.
BAD_SENDER = Reply(code=550, enhanced="5.6.0", text="Message has a malformed Sender header")
SMUGGLING = Reply(code=550, enhanced="5.6.0", text="Bare CR or LF in message not allowed")
NO_FROM = Reply(code=550, enhanced="5.6.0", text="Message has no valid From header")
BAD_HEADER = Reply(code=550, enhanced="5.6.0", text="Message header is malformed")


def bad_deliver_after(problem: str) -> Reply:
    """``550 5.6.0`` for an ``X-Postline-Deliver-After`` header that cannot be used
    (malformed, in the past, too far ahead, or given twice), naming the problem: sending
    at once would not be what the sender asked for."""
    return Reply(code=550, enhanced="5.6.0", text=f"X-Postline-Deliver-After: {problem}")


# DATA: attachments and content (policy/attachments.py, policy/signatures.py). A refused
# file is the sender's own, so the reply names it (escaped, shortened) and the rule.
MIME_TOO_DEEP = Reply(code=550, enhanced="5.6.0", text="MIME structure nested too deeply")


def shown_name(name: str, limit: int = 80) -> str:
    """A file name safe in a reply line: controls and non-ASCII escaped (``\\u202e``),
    shortened to ``limit`` characters."""
    text = "".join(c if " " <= c < "\x7f" else c.encode("unicode_escape").decode() for c in name)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def attachment_refused(name: str, why: str) -> Reply:
    """``550 5.7.1`` naming the refused attachment and the rule it broke."""
    shown = f'"{shown_name(name)}"' if name else "without a name"
    return Reply(code=550, enhanced="5.7.1", text=f"Attachment {shown} refused: {why}")


def attachment_too_big(name: str, size: int, limit: int) -> Reply:
    """``552 5.3.4`` (RFC 3463 X.3.4, a policy size limit) naming the attachment."""
    shown = f'"{shown_name(name)}"' if name else "without a name"
    return Reply(
        code=552,
        enhanced="5.3.4",
        text=f"Attachment {shown} is {size} bytes, more than the {limit} allowed",
    )


def too_many_attachments(count: int, limit: int) -> Reply:
    """``550 5.7.1``: more attachments than the policy allows."""
    return Reply(
        code=550, enhanced="5.7.1", text=f"Too many attachments ({count}, at most {limit})"
    )


def signature_would_break(why: str) -> Reply:
    """``550 5.6.0`` for a DKIM-signed message ingest would change (``why``): sent on, its
    signature would fail at every recipient; the client can fix what it sends instead."""
    return Reply(
        code=550,
        enhanced="5.6.0",
        text=f"Message is DKIM-signed and {why}, which would break its signature",
    )


BUS_FAILED = Reply(code=451, enhanced="4.3.0", text="Temporary failure, please try again later")
#: The bus has no room (a full disk): RFC 3463 3.4 X.3.1 "mail system full" with RFC 5321
#: 4.2.2's 452 "insufficient system storage", as Postfix answers when its queue is full.
BUS_FULL = Reply(code=452, enhanced="4.3.1", text="Insufficient system storage, try again later")
INTERNAL_ERROR = Reply(code=451, enhanced="4.3.0", text="Internal error, please try again later")


def queued(message_id: str) -> Reply:
    """The DATA reply once the Submission is durable."""
    return Reply(code=250, enhanced="2.0.0", text=f"Ok: queued as {message_id}")


#: aiosmtpd's own replies (prefix match) mapped to enhanced-code replies of ours.
BUILTIN: tuple[tuple[str, Reply], ...] = (
    ("553 5.1.3 Error: malformed address", BAD_ADDRESS),
    ("552 Error: message size exceeds", TOO_BIG),
    ("552 Error: Too much mail data", TOO_BIG),
    ("503 Error: send", Reply(code=503, enhanced="5.5.1", text="Send EHLO first")),
    ("503 Error: need MAIL", Reply(code=503, enhanced="5.5.1", text="Need MAIL command")),
    ("503 Error: need RCPT", Reply(code=503, enhanced="5.5.1", text="Need RCPT command")),
    ("503 Error: nested MAIL", Reply(code=503, enhanced="5.5.1", text="Nested MAIL command")),
    ("503 Already authenticated", Reply(code=503, enhanced="5.5.1", text="Already authenticated")),
    ("250 OK", OK),
    ("221 Bye", Reply(code=221, enhanced="2.0.0", text="Bye")),
    ("530 Must issue a STARTTLS", Reply(code=530, enhanced="5.7.0", text="Must issue STARTTLS")),
    ("220 Ready to start TLS", Reply(code=220, enhanced="2.0.0", text="Ready to start TLS")),
    ("500 Line too long", Reply(code=500, enhanced="5.5.2", text="Line too long")),
    ("500 Command line too long", Reply(code=500, enhanced="5.5.2", text="Line too long")),
    ("501 ", Reply(code=501, enhanced="5.5.4", text="Syntax error in parameters")),
    # RFC 5321 4.1.1.11 / RFC 1869: a MAIL or RCPT parameter we do not implement.
    ("555 ", Reply(code=555, enhanced="5.5.4", text="Parameter not recognized or not implemented")),
    ("500 ", Reply(code=500, enhanced="5.5.1", text="Command not recognized")),
    ("502 ", Reply(code=502, enhanced="5.5.1", text="Command not implemented")),
)


def translate(status: str) -> str:
    """aiosmtpd's reply with an enhanced code (ours is used as is)."""
    if status.startswith(BUILTIN[0][0]):
        return str(BUILTIN[0][1])  # the one aiosmtpd reply with an enhanced code we replace
    if status[3:4] == "-" or (status[4:5] in ("2", "4", "5") and status[5:6] == "."):
        return status  # a line of a multi-line reply, or it already has an enhanced code
    for prefix, reply in BUILTIN:
        if status.startswith(prefix):
            return str(reply)
    return status

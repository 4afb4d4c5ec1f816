"""Classify what a remote MX (or the network) said into delivered / deferred / bounced.

Owns: the :class:`Outcome` enum, the synthetic replies the deliverer records when there is no
real SMTP reply (DNS and network failures), and :func:`classify`, the ONE pure function that
maps a reply or an exception to an outcome. Unknown means temporary (KumoMTA
``client_types.rs``): the message is retried, never lost. Does not decide about throttling
(``throttle.py``) or retry timing (``retry.py``).
"""

from __future__ import annotations

import enum
import re
import ssl
from dataclasses import dataclass

from shared.bounceclass.reasons import Reason, reason_of
from shared.errors import StageError
from shared.wire.records import SmtpReply


class Outcome(enum.StrEnum):
    """What happened to one recipient in one attempt."""

    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCED = "bounced"


class DeliveryFailure(StageError):
    """Raised by ``mx.py`` and ``session.py`` when a delivery cannot proceed before or around
    SMTP (DNS failure, null MX, no MX host reachable, TLS required but unavailable); carries
    the (synthetic) reply to record, and what happened in words when known (``detail``, for
    the mail log: "no DNS answer for example.com: resolver 10.0.0.2:53 timed out"); the
    reply stays the named constant, so events and DSNs say the same for the same failure."""

    def __init__(self, reply: SmtpReply, detail: str = "") -> None:
        self.reply = reply
        self.detail = detail
        super().__init__(detail or str(reply))


# Synthetic replies, named once. Enhanced codes from RFC 3463.
#: RFC 7505 section 4.1: a null MX means the domain accepts no mail.
NULL_MX = SmtpReply(code=556, enhanced="5.1.10", text="recipient domain has a null MX (RFC 7505)")
#: The domain does not exist (DNS NXDOMAIN): bad destination system address.
NO_SUCH_DOMAIN = SmtpReply(code=550, enhanced="5.1.2", text="recipient domain does not exist")
#: The domain exists but publishes neither MX nor A/AAAA records.
NO_MAIL_HOST = SmtpReply(code=550, enhanced="5.1.2", text="recipient domain has no mail host")
#: SERVFAIL or a DNS timeout: the directory server failed (temporary).
DNS_TEMPORARY = SmtpReply(code=451, enhanced="4.4.3", text="DNS lookup failed temporarily")
#: No MX host answered a TCP connection.
NO_ANSWER = SmtpReply(code=451, enhanced="4.4.1", text="no MX host answered")
#: The connection broke or timed out during the transaction.
CONNECTION_LOST = SmtpReply(code=451, enhanced="4.4.2", text="connection lost")
#: TLS is required by policy but the server did not offer STARTTLS or the handshake failed.
TLS_UNAVAILABLE = SmtpReply(code=451, enhanced="4.7.5", text="TLS required but not available")
#: RFC 3463 4.7.5 "cryptographic failure": the MX hosts' TLS did not meet the destination's
#: published policy (MTA-STS, DANE) or ours (a certificate that fails verification).
TLS_POLICY_FAILED = SmtpReply(code=451, enhanced="4.7.5", text="TLS policy not met by any MX host")
#: Anything the deliverer did not expect: our own failures are never a 5xx (the mail is
#: retried, as Postfix defers on an unknown failure).
LOCAL_FAILURE = SmtpReply(code=451, enhanced="4.3.0", text="local delivery failure")


#: RFC 5321 4.1.2 / RFC 3463 5.1.3: the recipient is not a valid mailbox (never sent).
BAD_RECIPIENT_SYNTAX = SmtpReply(
    code=553, enhanced="5.1.3", text="bad destination mailbox address syntax"
)
#: RFC 3463 5.1.7: our own return path is not a valid mailbox (never sent).
BAD_SENDER_SYNTAX = SmtpReply(code=553, enhanced="5.1.7", text="bad sender mailbox address syntax")
#: RFC 6531 3.2 / RFC 3463 5.6.7: an internationalised address, and the server lacks SMTPUTF8.
SMTPUTF8_UNAVAILABLE = SmtpReply(
    code=553, enhanced="5.6.7", text="SMTPUTF8 is required, but was not offered by the host"
)
#: RFC 6152 / RFC 3463 5.6.3: the message is still 8-bit (the signer could not make it 7-bit)
#: and the server did not offer 8BITMIME; it is never sent as 8-bit to such a server.
EIGHTBIT_UNAVAILABLE = SmtpReply(
    code=554,
    enhanced="5.6.3",
    text="8-bit content, but 8BITMIME was not offered by the host (conversion not supported)",
)
#: The longest exception text a LOCAL_FAILURE reply carries (it reaches events and DSNs).
_MAX_ERROR_TEXT = 200


def local_error(exc: BaseException) -> SmtpReply:
    """:data:`LOCAL_FAILURE` naming ``exc`` (an unexpected error of ours: temporary)."""
    detail = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_TEXT]
    return SmtpReply(
        code=LOCAL_FAILURE.code,
        enhanced=LOCAL_FAILURE.enhanced,
        text=f"{LOCAL_FAILURE.text}: {detail}",
    )


@dataclass(frozen=True)
class Classified:
    """An outcome with the reply that caused it (synthetic when there was no real reply)."""

    outcome: Outcome
    reply: SmtpReply

    @property
    def reason(self) -> Reason | None:
        """Why a deferred or bounced recipient failed (``shared.bounceclass.reasons``, the
        table the bouncer uses for DSNs too); ``None`` when delivered. Computed on demand:
        the regexes run once per failed recipient, never for a 250."""
        if self.outcome is Outcome.DELIVERED:
            return None
        reply = self.reply
        return reason_of(reply.enhanced, reply.code, reply.text)


def classify(result: SmtpReply | BaseException) -> Classified:
    """Classify a reply or an exception (pure; table-tested in ``test_outcome.py``).

    - 2xx (and 3xx, which only ends a command successfully mid-transaction): delivered;
    - 4xx: deferred; 5xx: bounced (RFC 5321 4.2.1), except that an enhanced code of class 4
      on a 5xx reply, or class 5 on a 4xx reply, is a server contradiction: deferred;
    - :class:`DeliveryFailure`: its reply, classified the same way;
    - network, TLS and timeout errors: deferred with :data:`CONNECTION_LOST` /
      :data:`TLS_UNAVAILABLE`;
    - anything else (unknown codes, unknown exceptions): deferred.
    """
    if isinstance(result, DeliveryFailure):
        return classify(result.reply)
    if isinstance(result, BaseException):
        reply = _reply_for_exception(result)
        if reply is not None:
            return Classified(_outcome_for_reply(reply), reply)
        return Classified(Outcome.DEFERRED, _synthetic_for_exception(result))
    return Classified(_outcome_for_reply(result), result)


_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)")


def parse_reply(code: int, message: str) -> SmtpReply:
    """A reply from its code and text, splitting off the RFC 3463 enhanced code."""
    text = " ".join(message.split())  # multi-line replies become one line
    match = _ENHANCED.match(text)
    if match:
        return SmtpReply(code=code, enhanced=match.group(0).strip(), text=text[match.end() :])
    return SmtpReply(code=code, text=text)


def _outcome_for_reply(reply: SmtpReply) -> Outcome:
    code_class = reply.code // 100
    enhanced_class = reply.enhanced[:1]
    if code_class in (2, 3) and enhanced_class in ("", "2"):
        return Outcome.DELIVERED
    if code_class == 5 and enhanced_class in ("", "5"):
        return Outcome.BOUNCED
    return Outcome.DEFERRED


def _reply_for_exception(exc: BaseException) -> SmtpReply | None:
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None)
    if isinstance(code, int) and 200 <= code <= 599 and isinstance(message, str):
        # aiosmtplib's SMTPResponseException carries the server's reply.
        return parse_reply(code, message)
    return None


def _synthetic_for_exception(exc: BaseException) -> SmtpReply:
    detail = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    if isinstance(exc, ssl.SSLError):
        return SmtpReply(code=451, enhanced="4.7.5", text=f"TLS failed: {detail}"[:300])
    if isinstance(exc, OSError | TimeoutError | EOFError):
        return SmtpReply(code=451, enhanced="4.4.2", text=f"connection lost: {detail}"[:300])
    return SmtpReply(code=451, enhanced="4.3.0", text=f"local delivery failure: {detail}"[:300])

"""The mail log: one line per recipient per attempt, as Postfix's smtp(8) writes to maillog.

Owns :class:`MailLogLine` (the fields a Postfix operator greps for: queue id, ``to=``,
``relay=host[address]:port``, ``delay=``, ``delays=a/b/c/d``, ``dsn=``, ``status=`` with the
reply, plus what Postfix has no field for: tenant, delivery id, attempt, source address, TLS
version and cipher, size, lane), its readable form (:meth:`MailLogLine.text`) and its JSON
fields (:meth:`MailLogLine.fields`), the lines of an attempt, a hold and an expiry built from
what ``report.py`` and ``retry.py`` already have, and :func:`write`, which logs each on the
``postline.maillog`` logger at info level. The process's log handler formats it:
``[log] format = "json"`` writes the fields, ``"text"`` the readable line
(``shared.runtime.logs.TEXT_LINE``). ``[deliverer] mail_log = false`` turns it off.

Delays, as Postfix's ``delays=a/b/c/d`` (postconf(5), "delays"): ``queued`` is the time from
submission to this attempt (signing, waiting in the lane and in retry tiers, earlier
attempts), ``dns`` the MX lookup, ``connect`` the connection setup (TCP, greeting, EHLO,
STARTTLS) and ``transmit`` the SMTP transaction; ``delay`` is their sum, the time since
submission. A reused connection spends nothing on the lookup or the setup.

Does not decide outcomes (``outcome.py``), retry times (``retry.py``) or the records
(``report.py``); it only says what they were.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from typing import Any

from services.deliverer.lanes import lane_name
from services.deliverer.outcome import Classified, Outcome
from services.deliverer.queue import (
    SHED_PAUSED,
    SHED_SUSPENDED,
    SHED_THROTTLED,
    SHED_WARMUP,
    JobResult,
)
from shared.runtime.logs import TEXT_LINE
from shared.wire.records import Delivery, SmtpReply

log = logging.getLogger("postline.maillog")


class Status(enum.StrEnum):
    """Postfix's ``status=`` words, plus ``held`` (no attempt: the sender is paused or its
    source address waits for a warm-up allowance)."""

    SENT = "sent"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    EXPIRED = "expired"
    HELD = "held"


_STATUS = {
    Outcome.DELIVERED: Status.SENT,
    Outcome.DEFERRED: Status.DEFERRED,
    Outcome.BOUNCED: Status.BOUNCED,
}

#: Why a Delivery was held without an attempt, in words (the hold's reasons: ``hold.py``,
#: ``sources.py``, ``throttle.py``).
_HELD_WHY = {
    SHED_PAUSED: "sender paused: tenant {tenant} or its sending domain is paused or disabled",
    SHED_WARMUP: "warm-up allowance of the source pool used up for {domain}",
    SHED_THROTTLED: "delivery temporarily suspended: {domain} is throttled",
    SHED_SUSPENDED: "held by an operator's suspension (postline queue suspend)",
}


@dataclass(frozen=True)
class Delays:
    """Where the time went, in seconds (see the module docstring)."""

    queued: float = 0.0
    dns: float = 0.0
    connect: float = 0.0
    transmit: float = 0.0

    @property
    def total(self) -> float:
        """The time since submission (Postfix's ``delay=``)."""
        return self.queued + self.dns + self.connect + self.transmit

    def text(self) -> str:
        """``a/b/c/d`` as Postfix writes it (hundredths, trailing zeros dropped)."""
        return "/".join(_seconds(x) for x in (self.queued, self.dns, self.connect, self.transmit))


@dataclass(frozen=True)
class MailLogLine:
    """One recipient's outcome in one attempt (or its hold or expiry)."""

    status: Status
    message_id: str
    delivery_id: str
    tenant: str
    sender: str  # the original envelope sender (the return path is a VERP address)
    recipient: str
    attempt: int
    size: int
    lane: str
    delays: Delays = Delays()
    relay: str = ""  # host[address]:port; "" when no connection was made
    source: str = ""  # the local address sent from ("" = the operating system's choice)
    reply: SmtpReply | None = None
    tls: str = ""
    cipher: str = ""
    tls_security: str = ""  # what governed the session: opportunistic, mta-sts, dane, ...
    tls_verified: bool = False  # the MX host's certificate was verified
    cause: str = ""  # deferred, bounced without a reply, expired, held: what happened
    next_attempt: float = 0.0  # deferred and held: when the next attempt is due

    @property
    def dsn(self) -> str:
        """The RFC 3463 status (from the reply's enhanced code, else its class)."""
        if self.reply is None:
            return ""
        return self.reply.enhanced or f"{self.reply.code // 100}.0.0"

    @property
    def reason(self) -> str:
        """What goes in the parentheses after ``status=``."""
        reply = _reply_text(self.reply)
        if self.cause:
            said = self.cause
        elif reply and self.relay:
            said = f"host {self.relay.rpartition(':')[0]} said: {reply}"
        else:
            said = reply
        if self.next_attempt:
            said += ("; " if said else "") + f"next attempt {utc(self.next_attempt)}"
        return said

    def fields(self) -> dict[str, Any]:
        """The JSON log fields (every one always present, so a query never misses a key)."""
        return {
            "message_id": self.message_id,
            "delivery_id": self.delivery_id,
            "tenant": self.tenant,
            "from": self.sender,
            "to": self.recipient,
            "relay": self.relay,
            "source": self.source,
            "delay": round(self.delays.total, 3),
            "delays": {
                "queued": round(self.delays.queued, 3),
                "dns": round(self.delays.dns, 3),
                "connect": round(self.delays.connect, 3),
                "transmit": round(self.delays.transmit, 3),
            },
            "attempt": self.attempt,
            "dsn": self.dsn,
            "status": str(self.status),
            "reply": _reply_text(self.reply),
            "reason": self.reason,
            "tls": self.tls,
            "cipher": self.cipher,
            "tls_security": self.tls_security,
            "tls_verified": self.tls_verified,
            "size": self.size,
            "lane": self.lane,
            "next_attempt": utc(self.next_attempt) if self.next_attempt else "",
        }

    def _trust(self) -> str:
        """`` (dane, verified)``: what the TLS session was held to, when there was one."""
        if not self.tls or not self.tls_security:
            return ""
        return f" ({self.tls_security}, {'verified' if self.tls_verified else 'unverified'})"

    def text(self) -> str:
        """The readable line: Postfix's fields in Postfix's order, ours after them."""
        parts = [
            f"to=<{self.recipient}>",
            f"relay={self.relay or 'none'}",
            f"delay={_seconds(self.delays.total)}",
            f"delays={self.delays.text()}",
            f"dsn={self.dsn or '-'}",
            f"status={self.status}" + (f" ({self.reason})" if self.reason else ""),
            f"from=<{self.sender}>",
            f"tenant={self.tenant or '-'}",
            f"attempt={self.attempt}",
            f"size={self.size}",
            f"lane={self.lane}",
            f"source={self.source or '-'}",
            f"tls={self.tls or 'none'}"
            + (f" {self.cipher}" if self.cipher else "")
            + self._trust(),
            f"delivery={self.delivery_id}",
        ]
        return f"{self.message_id}: " + ", ".join(parts)


def attempt_lines(
    delivery: Delivery, result: JobResult, at: float, next_attempt: float
) -> list[MailLogLine]:
    """One line per recipient of an attempt; ``next_attempt`` for the deferred ones (0:
    they expired instead)."""
    timing = result.timing
    measured = timing.dns + timing.connect + timing.transmit
    delays = Delays(
        queued=_queued(delivery, at, measured),
        dns=timing.dns,
        connect=timing.connect,
        transmit=timing.transmit,
    )
    return [
        _attempt_line(delivery, result, rcpt, classified, delays=delays, next_attempt=next_attempt)
        for rcpt, classified in result.results.items()
    ]


def _attempt_line(
    delivery: Delivery,
    result: JobResult,
    rcpt: str,
    classified: Classified,
    *,
    delays: Delays,
    next_attempt: float,
) -> MailLogLine:
    deferred = classified.outcome is Outcome.DEFERRED
    status = _STATUS[classified.outcome]
    if deferred and not next_attempt:
        status = Status.EXPIRED  # deferred once more, past the maximum age
    return MailLogLine(
        status=status,
        message_id=delivery.message_id,
        delivery_id=delivery.delivery_id,
        tenant=delivery.tenant,
        sender=delivery.sender,
        recipient=rcpt,
        attempt=delivery.attempt + 1,
        size=len(delivery.data),
        lane=lane_name(delivery),
        delays=delays,
        relay=result.relay,
        source=result.source,
        reply=classified.reply,
        tls=result.tls,
        cipher=result.cipher,
        tls_security=result.tls_security,
        tls_verified=result.tls_verified,
        cause=result.cause if classified.outcome is not Outcome.DELIVERED else "",
        next_attempt=next_attempt if deferred else 0.0,
    )


def held_lines(
    delivery: Delivery, result: JobResult, at: float, next_attempt: float
) -> list[MailLogLine]:
    """One line per recipient of a Delivery held without an attempt until ``next_attempt``
    (a paused sender, a warm-up allowance used up, a throttled destination); none for other
    sheds (a full window or a stopping deliverer says nothing about the mail)."""
    why = _HELD_WHY.get(result.shed)
    if why is None:
        return []
    status = Status.DEFERRED if result.shed == SHED_THROTTLED else Status.HELD
    # A suspension names itself in the result ("suspended: domain:x by cli:ann (why)").
    cause = result.cause or why.format(tenant=delivery.tenant or "-", domain=delivery.domain)
    return _without_attempt(delivery, at, status, cause=cause, next_attempt=next_attempt)


def expired_lines(delivery: Delivery, at: float) -> list[MailLogLine]:
    """One line per recipient of a Delivery given up past its maximum age."""
    last = f"; last reply: {_reply_text(delivery.last_reply)}" if delivery.last_reply else ""
    age = at - (delivery.submitted_at or delivery.first_attempt_at or at)
    cause = f"gave up after {_age(age)} in the queue{last}"
    return _without_attempt(delivery, at, Status.EXPIRED, cause=cause, reply=delivery.last_reply)


def _without_attempt(
    delivery: Delivery, at: float, status: Status, **fields: Any
) -> list[MailLogLine]:
    """One line per recipient of a Delivery that no attempt was made for (held, expired):
    no relay, TLS or timings but the time it has been queued."""
    return [
        MailLogLine(
            status=status,
            message_id=delivery.message_id,
            delivery_id=delivery.delivery_id,
            tenant=delivery.tenant,
            sender=delivery.sender,
            recipient=rcpt,
            attempt=delivery.attempt,
            size=len(delivery.data),
            lane=lane_name(delivery),
            delays=Delays(queued=_queued(delivery, at, 0.0)),
            **fields,
        )
        for rcpt in delivery.rcpt_to
    ]


def write(lines: list[MailLogLine], logger: logging.Logger = log) -> None:
    """Log each line at info: its status as the event, its fields, its readable form."""
    if not logger.isEnabledFor(logging.INFO):
        return
    for line in lines:
        logger.info(str(line.status), extra={**line.fields(), TEXT_LINE: line.text()})


def utc(at: float) -> str:
    """A UTC time to the second, ISO 8601 (``2026-03-01T12:05:10Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _queued(delivery: Delivery, at: float, measured: float) -> float:
    """From submission to the start of this attempt (0 when the submission time is not
    known: DSNs and records from before it was carried)."""
    if delivery.submitted_at <= 0:
        return 0.0
    return max(0.0, at - delivery.submitted_at - measured)


def _reply_text(reply: SmtpReply | None) -> str:
    if reply is None:
        return ""
    return " ".join(str(part) for part in (reply.code, reply.enhanced, reply.text) if part)


def _seconds(value: float) -> str:
    """Hundredths of a second, as Postfix writes delays (``0.35``, ``0``, ``12``)."""
    return f"{max(0.0, value):.2f}".rstrip("0").rstrip(".")


def _age(seconds: float) -> str:
    """A queue age for people: ``4d 2h``, ``3h 10m``, ``12m``, ``40s``."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{secs}s"

"""Fan-out: one signed copy of a Submission becomes Deliveries for the outbound lanes.

Owns how recipients are grouped and what envelope each Delivery gets:

- VERP on: one Delivery per recipient, whose envelope sender is its own HMAC return path
  ``<verp_local>+<token>-<rcpt>@<bounce domain>`` (``shared.wire.tokens.verp_address``; the
  domain is chosen per message, ``returnpath.py``), so the bouncer can attribute any bounce
  to message and recipient and ignore forged ones.
- VERP off: one Delivery per recipient domain, with the original envelope sender.
- A null reverse-path stays null (RFC 5321 4.5.5: notifications must never cause more
  notifications), so DSNs passing through are never VERP-encoded.
- The sender's DSN request (RFC 3461) goes with each copy: RET and ENVID, and NOTIFY and
  ORCPT of the copy's own recipients.
- Times come from policy: ``expires_at`` = accepted time (or the send-at, when later: the
  sender asked for the mail then) + ``max_message_age``; ``not_before`` = now +
  ``first_attempt_delay``; ``send_at`` is the Submission's. The deliverer sets the attempt
  times; a send-at still ahead is the pipeline's to place in a retry tier.

Deliveries are keyed by recipient domain (on ``OUTBOUND``, or ``OUTBOUND_BULK`` when bulk: the
pipeline picks the lane), so one deliverer owns a domain in each lane.
It does not sign, filter suppressed recipients or choose keys (``pipeline.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.wire.records import Delivery, Submission, new_id
from shared.wire.tokens import verp_address


@dataclass(frozen=True)
class Envelope:
    """What decides the envelope of each Delivery."""

    verp: bool
    verp_local: str
    bounce_domain: str
    secret: bytes
    max_message_age: float
    first_attempt_delay: float


def recipient_domain(recipient: str) -> str:
    """The lower-cased domain of an address ("" when it has none)."""
    return recipient.rpartition("@")[2].lower() if "@" in recipient else ""


def group_by_domain(recipients: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Recipients per domain, in first-seen order, duplicates (case-insensitive) removed."""
    groups: dict[str, list[str]] = {}
    seen: set[str] = set()
    for recipient in recipients:
        if recipient.lower() in seen:
            continue
        seen.add(recipient.lower())
        groups.setdefault(recipient_domain(recipient), []).append(recipient)
    return {domain: tuple(rcpts) for domain, rcpts in groups.items()}


def return_path(submission: Submission, recipient: str | None, envelope: Envelope) -> str:
    """The envelope sender for a copy to ``recipient`` (``None``: a per-domain copy)."""
    if not submission.mail_from or recipient is None or not envelope.verp:
        return submission.mail_from
    return verp_address(
        envelope.verp_local, envelope.bounce_domain, submission.id, recipient, envelope.secret
    )


def deliveries(
    submission: Submission,
    recipients: Sequence[str],
    data: bytes,
    envelope: Envelope,
    now: float,
    *,
    per_recipient: bool,
    bulk: bool = False,
) -> list[Delivery]:
    """The Deliveries carrying ``data`` (one signed copy) to ``recipients``.

    ``per_recipient`` makes one Delivery per recipient (VERP, or a per-recipient copy such
    as bulk mail with its own unsubscribe token); otherwise one per recipient domain.
    """
    one_each = per_recipient or envelope.verp
    batches: list[tuple[str, tuple[str, ...], str | None]] = []
    for domain, rcpts in group_by_domain(recipients).items():
        if one_each:
            batches += [(domain, (rcpt,), rcpt) for rcpt in rcpts]
        else:
            batches.append((domain, rcpts, None))
    return [
        Delivery(
            message_id=submission.id,
            delivery_id=new_id(),
            domain=domain,
            mail_from=return_path(submission, verp_for, envelope),
            rcpt_to=rcpts,
            data=data,
            sender=submission.mail_from,
            submitted_at=submission.received_at,
            expires_at=max(submission.received_at, submission.send_at) + envelope.max_message_age,
            not_before=now + envelope.first_attempt_delay,
            tags=submission.tags,
            smtputf8=submission.smtputf8,
            body_8bit=submission.body_8bit,
            bulk=bulk,
            tenant=submission.tenant,
            send_at=submission.send_at,
            require_tls=submission.require_tls,
            requiretls=submission.requiretls,
            tls_optional=submission.tls_optional,
            dsn_ret=submission.dsn_ret,
            dsn_envid=submission.dsn_envid,
            dsn={r: submission.dsn[r] for r in rcpts if r in submission.dsn},
        )
        for domain, rcpts, verp_for in batches
    ]

"""What ingest makes of a message every check has passed, for SMTP and the HTTP API alike.

:func:`finish` takes the send-at header (``X-Postline-Deliver-After``, ``shared.sendat``) and
the ``X-Postline-*`` control headers out of the message (they are never signed nor sent on),
and adds the Received trace field and a Message-ID and Date where missing (``headers.py``);
:func:`submission` and :func:`events` make the records the hand-off publishes together
(``handoff.py``): the Submission, and the ``accepted`` event plus one ``suppressed`` event per
recipient dropped by the suppression list. Both front doors call these, so a message is the
same on the bus whichever way it came in.

It does not check anything (``policy/``) and does not publish.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.ingest import headers, subject
from services.ingest.policy.base import Transaction
from services.ingest.scanning.decide import Outcome
from services.ingest.scanning.scanner import Scanned
from shared import sendat, tlsrequire
from shared.wire.records import ClientInfo, Event, EventKind, Quarantined, Submission

STAGE = "ingest"


@dataclass(frozen=True)
class Finished:
    """A message ready for the bus."""

    data: bytes  # with our trace and missing headers, without control headers
    tags: dict[str, str]  # from its ``X-Postline-*`` headers, plus the caller's
    send_at: float  # deliver no earlier than this (0: at once)
    #: It has ``TLS-Required: No`` (RFC 8689 5; the field stays, for the hops after ours).
    tls_required_no: bool = False
    #: What ``X-Postline-Require-TLS`` (or the API's ``require-tls`` tag) asked for; read
    #: from the fields themselves, so that ``max_tags`` cannot drop it (``None``: nothing).
    require_tls: bool | None = None
    subject: str = ""  # decoded, for the ``accepted`` event (``subject.py``)


def finish(
    msg: headers.Message,
    trace: headers.Trace,
    max_tags: int,
    *,
    tags: dict[str, str] | None = None,
    send_at: float = 0.0,
) -> Finished:
    """The message's final bytes, tags and send-at (see the module docstring).

    ``send_at`` (the API's own field) wins over the header, whose value the policy check
    ``deliver_after`` has already found usable; one that is not later than ``trace.at`` is
    0 (at once). ``tags`` (the API's) are added to those of the control headers.
    """
    msg, values = headers.take_field(msg, sendat.HEADER)
    if not send_at and values:
        send_at = sendat.parse_header(values[0], trace.at)
    api_tag = [v for k, v in (tags or {}).items() if k == tlsrequire.TAG]
    require_tls = tlsrequire.asked([*msg.get(tlsrequire.FIELD), *api_tag])
    msg, found = headers.take_tags(msg, max_tags)
    return Finished(
        headers.complete(msg, trace),
        {**found, **(tags or {})},
        send_at if send_at > trace.at else 0.0,
        tlsrequire.says_no(msg.get(tlsrequire.HEADER)),
        require_tls,
        subject.subject(msg),
    )


def kept(txn: Transaction) -> bool:
    """Whether any recipient is left to send to (every one may have been suppressed)."""
    return len(txn.dropped) < len(txn.rcpt_to)


def screened(
    submission: Submission | None, events: list[Event], scanned: Scanned | None
) -> tuple[Submission | Quarantined | None, list[Event]]:
    """What the hand-off publishes once the scanner has spoken: the Submission and its
    events plus the ``scanned`` event; for a quarantined message the Quarantined record in
    place of the Submission, and no ``accepted`` event (it is not on its way until an
    operator releases it: ``postline quarantine release``)."""
    if scanned is None:
        return submission, events
    if scanned.outcome is Outcome.QUARANTINED and submission is not None:
        held = [e for e in events if e.kind is not EventKind.ACCEPTED]
        return scanned.quarantined(submission), [*held, scanned.event]
    return submission, [*events, scanned.event]


def submission(
    txn: Transaction,
    client: ClientInfo,
    finished: Finished,
    at: float,
    *,
    tenant_require_tls: bool | None = None,
) -> Submission | None:
    """The Submission of ``txn``; ``None`` when every recipient was dropped (suppressed).

    Its TLS requirement (``shared.tlsrequire``) comes from REQUIRETLS on MAIL FROM, the
    ``require-tls`` tag, ``tenant_require_tls`` (the tenant's setting) and the message's
    ``TLS-Required`` field, settled here once so that every copy carries the same."""
    kept = tuple(r for r in txn.rcpt_to if r not in txn.dropped)
    if not kept:
        return None  # every recipient suppressed ("drop"): only events are recorded
    tls = tlsrequire.decide(
        requiretls=txn.requiretls,
        tag=finished.require_tls,
        tenant=tenant_require_tls,
        tls_required_no=finished.tls_required_no,
    )
    return Submission(
        id=txn.id,
        received_at=at,
        client=client,
        mail_from=txn.mail_from,
        rcpt_to=kept,
        data=finished.data,
        tags=finished.tags,
        smtputf8=txn.smtputf8,
        body_8bit=not finished.data.isascii(),
        tenant=txn.tenant,
        send_at=finished.send_at,
        require_tls=tls.require_tls,
        requiretls=tls.requiretls,
        tls_optional=tls.tls_optional,
        dsn_ret=txn.dsn_ret,
        dsn_envid=txn.dsn_envid,
        dsn={r: d for r, d in txn.dsn.items() if r in kept},
    )


def events(
    txn: Transaction,
    tags: dict[str, str],
    at: float,
    *,
    tls: str = "",
    detail: str = "",
    subject: str = "",
) -> list[Event]:
    """The ``accepted`` event (unless every recipient was dropped) and a ``suppressed`` event
    per dropped recipient, published with the Submission. ``subject``: the decoded Subject
    (:attr:`Finished.subject`), on the ``accepted`` event only."""
    common: dict[str, Any] = {
        "message_id": txn.id,
        "at": at,
        "sender": txn.mail_from,
        "tags": tags,
        "stage": STAGE,
        "tenant": txn.tenant,
        "credential": txn.credential,
    }
    out: list[Event] = []
    if kept(txn):
        sent = [r for r in txn.rcpt_to if r not in txn.dropped]
        # Recipients and their domains: the reputation stage's compromised-account detection.
        domains = tuple(sorted({r.rpartition("@")[2].lower() for r in sent}))
        out.append(
            Event(
                kind=EventKind.ACCEPTED,
                tls=tls,
                detail=detail,
                recipients=len(sent),
                recipient_domains=domains,
                subject=subject,
                **common,
            )
        )
    for rcpt in txn.dropped:
        domain = rcpt.rpartition("@")[2].lower()
        out.append(
            Event(
                kind=EventKind.SUPPRESSED,
                recipient=rcpt,
                domain=domain,
                check="suppression",
                **common,
            )
        )
    return out

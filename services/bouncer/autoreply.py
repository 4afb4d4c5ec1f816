"""Auto-replies (RFC 3834) and vacation responders: recorded, never counted as bounces.

Owns the signals that a message is an automatic answer rather than a delivery failure:
strong ones (vacation subjects, X-Autoreply-style headers, ``Precedence: auto_reply``) and
the weak one, ``Auto-Submitted`` (RFC 3834 5), which bounces carry too and so only counts
once the bounce parsers found nothing. It does not parse bounces.
"""

from __future__ import annotations

import re
from email.message import Message

from services.bouncer.report import RecipientStatus, Report, ReportKind, clean_address

_VACATION_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|auto:|out of (the )?office|vacation|"
    r"away from (my|the) (desk|office)|abwesenheit|r[ée]ponse automatique|"
    r"respuesta autom[áa]tica|risposta automatica|automatisch antwoord|on leave|"
    r"i am (currently )?(out|away))",
    re.I,
)
_AUTOREPLY_HEADERS = ("x-autoreply", "x-autorespond", "x-vacation")
_DAEMON = re.compile(r"mailer-daemon|postmaster|mail delivery (sub)?system", re.I)


def strong_auto_reply(msg: Message) -> Report | None:
    """An auto-reply recognised by its subject or dedicated headers, else ``None``."""
    if _from_daemon(msg):
        return None  # a mail system's answer is a bounce or nothing, never a vacation
    reason = ""
    if _VACATION_SUBJECT.search(str(msg.get("Subject", ""))):
        reason = "subject"
    elif any(msg.get(h) is not None for h in _AUTOREPLY_HEADERS):
        reason = "header"
    elif str(msg.get("Precedence", "")).strip().lower() == "auto_reply":
        reason = "precedence"
    elif _auto_submitted(msg) == "auto-replied":
        reason = "auto-submitted"
    return _report(msg, reason) if reason else None


def weak_auto_reply(msg: Message) -> Report | None:
    """RFC 3834 ``Auto-Submitted`` other than ``no``, for messages no bounce parser took."""
    value = _auto_submitted(msg)
    if _from_daemon(msg):
        return None
    return _report(msg, "auto-submitted") if value and value != "no" else None


def _auto_submitted(msg: Message) -> str:
    return str(msg.get("Auto-Submitted", "")).strip().lower().split(";")[0].strip()


def _from_daemon(msg: Message) -> bool:
    return bool(_DAEMON.search(str(msg.get("From", ""))))


def _report(msg: Message, reason: str) -> Report:
    sender = clean_address(str(msg.get("From", "")))
    recipients = (RecipientStatus(recipient=sender, action="auto-replied"),) if sender else ()
    return Report(kind=ReportKind.AUTO_REPLY, recipients=recipients, parser=f"autoreply:{reason}")

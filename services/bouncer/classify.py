"""The class of one recipient of a parsed report (DSN, ARF, auto-reply).

Owns reading a report's kind before its codes: a feedback report is a complaint and an
auto-reply is never a bounce, whatever codes they carry; everything else goes to the shared
classifier (``shared.bounceclass``, which the reputation stage uses too). The suppression
consequences are ``suppress.py``'s.
"""

from __future__ import annotations

from services.bouncer.report import RecipientStatus, Report, ReportKind
from shared.bounceclass.classify import Classification, classify
from shared.bounceclass.reasons import Reason
from shared.bounceclass.rules import BounceClass, RuleTable


def classify_recipient(report: Report, status: RecipientStatus, table: RuleTable) -> Classification:
    """The class of one recipient of a parsed report: its kind first, then :func:`classify`."""
    if report.kind is ReportKind.COMPLAINT:
        rule = f"arf:{report.feedback_type or 'abuse'}"
        return Classification(BounceClass.COMPLAINT, rule, Reason.FEEDBACK)
    if report.kind is ReportKind.AUTO_REPLY:
        return Classification(BounceClass.AUTO_REPLY, report.parser, Reason.VACATION)
    mta = status.remote_mta or report.reporting_mta
    permanent = reported_permanence(status)
    return classify(
        status.status,
        status.smtp_code,
        status.diagnostic,
        mta,
        table,
        permanent=permanent,
        context=status.context,
    )


def reported_permanence(status: RecipientStatus) -> bool | None:
    """Whether the report itself says the failure is final (Action, status class or reply
    code), ``None`` when it says nothing (a text bounce without codes): then the reason's
    default decides (``shared.bounceclass.reasons``)."""
    if status.action in ("failed", "delayed") or status.status or status.smtp_code >= 400:
        return status.permanent
    return None

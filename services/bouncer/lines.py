"""What ``postline bounce classify`` prints for a message: one JSON-able line per recipient.

Owns turning a parsed report and its verdicts into plain dicts (kind, parser, recipient,
statuses, class, reason, rule, diagnostic). Parsing is ``parse.py``'s, classifying
``classify.py``'s, printing ``cli.py``'s. A module of its own so that the CLI imports it (and
with it the parsers, the rule table and the reasons' compiled patterns, about 0.1 s) only
for the command that classifies, once, not on every message.
"""

from __future__ import annotations

from typing import Any

from services.bouncer.classify import classify_recipient
from services.bouncer.parse import parse_message
from services.bouncer.report import ReportKind
from shared.bounceclass.rules import RuleTable, load_rules


def report_lines(raw: bytes, table: RuleTable | None = None) -> list[dict[str, Any]]:
    """One JSON-able line per recipient of the message in ``raw`` (one line if none)."""
    table = table if table is not None else load_rules()
    report = parse_message(raw)
    base = {
        "kind": str(report.kind),
        "parser": report.parser,
        "reporting_mta": report.reporting_mta,
    }
    if not report.recipients:
        return [
            {
                **base,
                "recipient": None,
                "class": "unknown",
                "reason": "undefined" if report.kind is ReportKind.OTHER else "",
                "rule": "none",
                "permanent": None,
            }
        ]
    lines = []
    for status in report.recipients:
        verdict = classify_recipient(report, status, table)
        lines.append(
            {
                **base,
                "recipient": status.recipient,
                "original_recipient": status.original_recipient,
                "action": status.action,
                "status": status.status,  # as the report gave it ("" when it gave none)
                # Always present for a failure: the report's, else derived from the reply
                # code and the reason (a 550 "user unknown" without one: 5.1.1).
                "delivery_status": verdict.status,
                "status_derived": verdict.status_derived,
                "smtp_code": status.smtp_code,
                "permanent": verdict.permanent,
                "class": str(verdict.bounce_class),
                "reason": str(verdict.reason),
                "rule": verdict.rule,
                "remote_mta": status.remote_mta,
                "diagnostic": status.diagnostic[:300],
            }
        )
    return lines

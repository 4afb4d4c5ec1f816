"""Bounce classification: one pure function from what a failure said to a class.

Owns the order (override rules, specific RFC 3463 codes, ordinary rules, generic-code and
reply-code fallbacks) and the RFC 3463 code table. The rules themselves live in the TOML
table (``rules.py``). Shared by the bouncer (suppressions, DSNs) and the reputation stage
(hard bounces and blocks in a sender's rates), so both read a reply alike; what a class
leads to is theirs (the bouncer's ``suppress.py``, the reputation stage's counts), and so is
reading a parsed report (the bouncer's ``classify_recipient``).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.bounceclass.reasons import Reason, explain
from shared.bounceclass.rules import BounceClass, Rule, RuleTable
from shared.providers import provider_for_host

H, S, B, U = BounceClass.HARD, BounceClass.SOFT, BounceClass.BLOCK, BounceClass.UNKNOWN

# RFC 3463 3.x (and the RFC 3886/7372/7505/8098 registry additions) for the specific codes
# whose meaning does not depend on the text; keyed by "subject.detail", permanent class.
_SPECIFIC: dict[str, BounceClass] = {
    "1.1": H,
    "1.2": H,
    "1.3": H,
    "1.4": H,
    "1.6": H,
    "1.10": H,  # bad mailbox / domain
    "2.1": H,  # mailbox disabled (RFC 3463 3.3: "not accepting messages")
    "2.2": S,
    "2.3": S,
    "2.4": S,  # mailbox full, message too long, list expansion
    "3.1": S,
    "3.2": S,
    "3.3": S,
    "3.4": S,
    "3.5": S,  # mail system full/busy/too big
    "4.1": S,
    "4.2": S,
    "4.3": S,
    "4.5": S,
    "4.6": S,
    "4.7": S,  # network, DNS, congestion
    "4.4": H,  # 5.4.4 unable to route: the domain has no usable MX or address
    "7.13": H,
    "7.14": H,  # RFC 3463/7372: user account disabled; trust relationship
    "7.23": B,
    "7.24": B,
    "7.25": B,
    "7.26": B,
    "7.27": B,  # SPF, rDNS, auth (RFC 7372)
    "7.28": B,
    "7.2": B,
    "7.7": B,
    "7.8": B,
    "7.9": B,
    "7.10": B,
    "7.11": B,
    "7.12": B,
}
# Generic codes: the text decides (rules), else this default.
_GENERIC: dict[str, BounceClass] = {
    "0.0": U,
    "1.0": H,
    "2.0": U,
    "3.0": S,
    "4.0": S,
    "5.0": U,
    "5.1": U,
    "5.2": U,
    "5.3": U,
    "5.4": U,
    "5.5": U,
    "5.6": U,
    "6.0": B,
    "6.1": B,
    "6.2": B,
    "6.3": B,
    "6.4": B,
    "6.5": B,
    "7.0": B,
    "7.1": B,
    "7.3": B,
    "7.4": B,
    "7.5": B,
    "7.6": B,
}


@dataclass(frozen=True)
class Classification:
    """The class and what decided it (``rfc3463:5.1.1``, ``rule:<name>``, ``smtp:550``...),
    the reason (``reasons.py``) and the status: the reported one, else derived from the
    reply code and the reason ("" only for reports that are not failures)."""

    bounce_class: BounceClass
    rule: str
    reason: Reason = Reason.UNDEFINED
    status: str = ""
    permanent: bool = False  # final (the report's word, else the codes, else the reason's)
    status_derived: bool = False  # ``status`` was derived: the report or reply gave none


def classify(
    status: str,
    smtp_code: int,
    diagnostic: str,
    mta: str,
    table: RuleTable,
    *,
    permanent: bool | None = None,
    context: str = "",
) -> Classification:
    """Classify one failure: its class (:func:`classify_class`), reason and status.

    ``permanent`` is what the report decided (RFC 3464 Action; ``None``: it did not);
    ``context`` the report's words around the failure, read for the reason only when the
    diagnostic names none (:func:`explain`). When the rule table and the codes leave the
    class ``unknown``, the reason's class stands in (a 550 "mailbox unavailable" from a
    host no rule names is still a hard bounce).
    """
    verdict = classify_class(status, smtp_code, diagnostic, mta, table)
    why = explain(status, smtp_code, diagnostic, permanent, context=context)
    bounce_class, rule = verdict.bounce_class, verdict.rule
    if bounce_class is U and why.info.bounce_class is not U:
        bounce_class, rule = why.info.bounce_class, f"reason:{why.reason}"
        if not why.permanent and bounce_class is H:
            bounce_class = S  # as _temporary: a transient failure never suppresses at once
    return Classification(
        bounce_class, rule, why.reason, why.status, why.permanent, status_derived=why.derived
    )


def classify_class(
    status: str, smtp_code: int, diagnostic: str, mta: str, table: RuleTable
) -> Classification:
    """The class of one failure (one pure function, tested with a table of real replies).

    ``status`` is the RFC 3463 code ("5.1.1" or ""), ``smtp_code`` the reply code (0 if
    unknown), ``diagnostic`` the remote text, ``mta`` the remote or reporting MTA host
    (for the provider-specific rules).
    """
    provider = provider_for_host(mta) if mta else "other"
    lowered = diagnostic.lower()  # once, for the rules' substring prefilters
    overrides, ordinary = table.for_provider(provider)
    rule = _first(overrides, status, diagnostic, provider, lowered)
    if rule is not None:
        return Classification(rule.bounce_class, f"rule:{rule.name}")
    klass, subject = _split(status)
    specific = _SPECIFIC.get(subject) if klass else None
    if specific is not None:
        return Classification(_temporary(klass, specific), f"rfc3463:{status}")
    rule = _first(ordinary, status, diagnostic, provider, lowered)
    if rule is not None:
        # Without an enhanced code the reply code says whether it is transient: a
        # "450 user unknown" (a callout that could not verify) is not a hard bounce yet.
        transient = klass or ("4" if 400 <= smtp_code < 500 else "")
        return Classification(_temporary(transient, rule.bounce_class), f"rule:{rule.name}")
    if klass:
        generic = _GENERIC.get(subject, U)
        return Classification(_temporary(klass, generic), f"rfc3463:{status}")
    if smtp_code >= 500:
        return Classification(U, f"smtp:{smtp_code}")
    if smtp_code >= 400:
        return Classification(S, f"smtp:{smtp_code}")
    return Classification(U, "none")


def _split(status: str) -> tuple[str, str]:
    parts = status.strip().split(".")
    if len(parts) != 3 or parts[0] not in ("4", "5") or not all(p.isdigit() for p in parts[1:]):
        return "", ""
    return parts[0], f"{int(parts[1])}.{int(parts[2])}"


def _temporary(klass: str, bounce_class: BounceClass) -> BounceClass:
    # RFC 3463 2: class 4 is "persistent transient": the address may well work tomorrow,
    # so a 4.x.x is never a hard bounce (a 4.7.x block stays a block: it is about us).
    if klass == "4" and bounce_class is H:
        return S
    return bounce_class


def _first(
    rules: tuple[Rule, ...], status: str, text: str, provider: str, lowered: str
) -> Rule | None:
    for rule in rules:
        if rule.matches(status, text, provider, lowered):
            return rule
    return None

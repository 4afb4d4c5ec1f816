"""MTA-STS (RFC 8461) as text: the ``_mta-sts`` TXT record, the policy file, MX matching.

Owns the syntax rules and nothing else: :func:`txt_policy_id` (section 3.1),
:func:`parse_policy` (section 3.2) and :func:`mx_matches` (section 4.1), plus the errors a
policy lookup reports, each carrying its RFC 8460 4.3 result type as a string (the
deliverer maps them to its ``ResultType``; ``postline domain check`` prints them). Fetching
is ``shared.mtasts_fetch``; caching and applying a policy is the deliverer's
(``services/deliverer/transport/mtasts.py``). It lives in ``shared`` because both the
deliverer and ``postline domain check`` read policies, and a stage never imports another.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

#: RFC 8461 3.2: the largest max_age a policy may give (about a year).
MAX_MAX_AGE = 31557600
#: RFC 8461 3.3: the policy's path on ``mta-sts.<domain>``.
WELL_KNOWN_PATH = "/.well-known/mta-sts.txt"

Mode = Literal["enforce", "testing", "none"]
MODES: tuple[Mode, ...] = ("enforce", "testing", "none")

# RFC 8461 3.1 ABNF, case-sensitive (%s"v=STSv1", %s"id="):
#   sts-field-delim = *WSP ";" *WSP
#   sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
#   sts-extension   = sts-ext-name "=" sts-ext-value
#   sts-ext-name    = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
#   sts-ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)   ; chars except ";", "=" and space
_DELIM = re.compile(r"[ \t]*;[ \t]*")
_ID = re.compile(r"id=([A-Za-z0-9]{1,32})")
_EXTENSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}=[\x21-\x3a\x3c\x3e-\x7e]+")
# RFC 8461 3.2: sts-policy-mx-value = ["*."] Domain (RFC 5321 4.1.2 sub-domains).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_MX_PATTERN = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")
_FIELD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}")


class MtaStsError(Exception):
    """A policy could not be had; ``result_type`` is its RFC 8460 4.3 name."""

    result_type = "sts-policy-fetch-error"


class PolicyFetchError(MtaStsError):
    """The HTTPS fetch failed: DNS, connection, timeout, status, redirect, size, media type."""

    result_type = "sts-policy-fetch-error"


class PolicyWebPkiInvalid(MtaStsError):
    """The policy host's certificate did not validate (RFC 8461 3.3: it must)."""

    result_type = "sts-webpki-invalid"


class PolicyInvalid(MtaStsError):
    """The fetched policy is not a valid RFC 8461 3.2 policy."""

    result_type = "sts-policy-invalid"


@dataclass(frozen=True)
class StsPolicy:
    """A parsed policy file."""

    mode: Mode
    max_age: int  # seconds
    mx: tuple[str, ...]  # the patterns, lower case, as published otherwise
    lines: tuple[str, ...]  # the policy's non-empty lines (a TLS-RPT report's policy-string)

    def matches(self, host: str) -> bool:
        """Whether MX ``host`` is one of the policy's (any pattern, section 4.1)."""
        return any(mx_matches(pattern, host) for pattern in self.mx)


def policy_host(domain: str) -> str:
    """Where ``domain``'s policy is served (RFC 8461 3.3)."""
    return f"mta-sts.{domain.lower().rstrip('.')}"


def txt_name(domain: str) -> str:
    """The name of ``domain``'s MTA-STS TXT record (RFC 8461 3.1)."""
    return f"_mta-sts.{domain.lower().rstrip('.')}"


def parse_txt(record: str) -> str:
    """The ``id`` of one ``v=STSv1`` TXT record; raises :class:`PolicyInvalid` when the record
    does not follow section 3.1 (unknown fields are allowed, as the section says)."""
    fields = _DELIM.split(record)
    if fields[0] != "v=STSv1":
        raise PolicyInvalid(f"TXT record does not start with v=STSv1: {record!r}")
    if fields[-1] == "":  # never fields[0], checked above: at least "v=STSv1" and ""
        fields.pop()  # a trailing delimiter is allowed
    policy_id = ""
    for field in fields[1:]:
        found = _ID.fullmatch(field)
        if found is not None:
            policy_id = policy_id or found.group(1)
        elif field.startswith("id="):
            raise PolicyInvalid(f"TXT record id is not 1-32 letters or digits: {field!r}")
        elif not _EXTENSION.fullmatch(field):
            raise PolicyInvalid(f"TXT record has a malformed field: {field!r}")
    if not policy_id:
        raise PolicyInvalid(f"TXT record has no id: {record!r}")
    return policy_id


def sts_records(records: Sequence[str]) -> list[str]:
    """The records RFC 8461 3.1 keeps: those starting ``v=STSv1`` and a delimiter (so not
    ``v=STSv10;``); the others are not MTA-STS records at all."""
    return [r for r in records if r.startswith("v=STSv1") and _DELIM.match(r, 7)]


def txt_policy_id(records: Sequence[str]) -> str | None:
    """The policy id published at ``_mta-sts.<domain>``, from all its TXT records (strings of
    each joined), or ``None`` when the domain has no usable record: RFC 8461 3.1 discards
    records not starting with ``v=STSv1;`` and then wants exactly one, syntactically valid."""
    candidates = sts_records(records)
    if len(candidates) != 1:
        return None
    try:
        return parse_txt(candidates[0])
    except PolicyInvalid:
        return None


def parse_policy(text: str) -> StsPolicy:
    """Parse a policy file (RFC 8461 3.2); raises :class:`PolicyInvalid` saying why.

    Lines end in CRLF or LF; each is ``key: value`` with optional whitespace after the colon
    and at the line's end. Unknown keys are ignored; of a key given twice (other than
    ``mx``), the first counts. ``version`` must be ``STSv1``; ``mode`` one of enforce,
    testing, none; ``max_age`` 0 to 31557600; ``mx`` patterns a domain name, optionally
    ``*.`` in front; enforce and testing need at least one ``mx``.
    """
    fields: dict[str, str] = {}
    patterns: list[str] = []
    lines: list[str] = []
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.removesuffix("\r").rstrip(" \t")
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not _FIELD_NAME.fullmatch(name):
            raise PolicyInvalid(f"line {number} is not 'key: value': {line[:80]!r}")
        value = value.lstrip(" \t")
        lines.append(line)
        if name == "mx":
            if not _MX_PATTERN.fullmatch(value):
                raise PolicyInvalid(f"line {number}: malformed mx pattern {value!r}")
            patterns.append(value.lower())
        else:
            fields.setdefault(name, value)
    if fields.get("version") != "STSv1":
        raise PolicyInvalid(f"version is {fields.get('version')!r}, not 'STSv1'")
    mode = fields.get("mode")
    if mode not in MODES:
        raise PolicyInvalid(f"mode is {mode!r}, not one of enforce, testing, none")
    max_age = fields.get("max_age", "")
    if not (max_age.isascii() and max_age.isdigit() and len(max_age) <= 10):
        raise PolicyInvalid(f"max_age is {max_age!r}, not a number of seconds")
    if int(max_age) > MAX_MAX_AGE:
        raise PolicyInvalid(f"max_age {max_age} is more than {MAX_MAX_AGE} (RFC 8461 3.2)")
    if mode != "none" and not patterns:
        raise PolicyInvalid(f"mode {mode} without any mx pattern")
    return StsPolicy(mode, int(max_age), tuple(patterns), tuple(lines))


def mx_matches(pattern: str, host: str) -> bool:
    """Whether MX ``host`` matches one ``mx`` pattern (RFC 8461 4.1): equal ignoring case
    and a final dot, or ``*.rest`` with exactly one more label in front of ``rest``."""
    host = host.lower().rstrip(".")
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        label, dot, rest = host.partition(".")
        return bool(label) and bool(dot) and rest == pattern[2:]
    return host == pattern

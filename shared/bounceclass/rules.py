"""The operator-editable bounce rule table (TOML): ordered regexes, optionally per provider.

Owns loading and validating the table (``default_rules.toml`` shipped in this package, or
the file ``[bouncer] rules_file`` names; the reputation stage loads the same file) and
matching one rule. The order of classification
(overrides, RFC 3463 codes, rules, fallbacks) is ``classify.py``'s.

A rule::

    [[rule]]
    name = "google-account-disabled"  # unique; reported as the rule that matched
    class = "hard"                    # hard, soft, block, complaint, auto_reply, unknown
    pattern = 'account .* is disabled' # Python regex, case-insensitive, on the diagnostic text
    provider = "google"               # optional: only for this provider (shared.providers)
    status = '^5\\.2\\.1$'            # optional regex the enhanced status code must match
    override = true                   # optional: checked before the RFC 3463 code table
"""

from __future__ import annotations

import enum
import functools
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import msgspec

from shared.bounceclass.literals import (
    lowered_pattern,
    pattern_literals,
    required_options,
    top_level,
    without_containing,
)
from shared.config import convert
from shared.errors import ConfigError

DEFAULT_RULES = "default_rules.toml"
ANY_PROVIDER = "*"


class BounceClass(enum.StrEnum):
    """What a failure means for the address (and for us)."""

    HARD = "hard"  # bad mailbox, bad domain, inactive mailbox: suppress at once
    SOFT = "soft"  # mailbox full, too large, temporary, DNS failure: suppress after N
    BLOCK = "block"  # spam/reputation/blocklist, policy, SPF/DKIM/DMARC, content: our problem
    COMPLAINT = "complaint"  # the recipient reported the message as spam
    AUTO_REPLY = "auto_reply"  # a vacation or auto-responder, never a bounce
    UNKNOWN = "unknown"  # nothing recognised: treated as transient (as KumoMTA's classifier does)


class RuleSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One rule as written in the TOML file."""

    name: str
    pattern: str
    provider: str = ANY_PROVIDER
    status: str = ""
    override: bool = False
    class_: BounceClass = msgspec.field(name="class")


class TableSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The TOML file: a version and the ordered rules."""

    version: int = 1
    rule: list[RuleSpec] = []


@dataclass(frozen=True)
class Rule:
    """A compiled rule."""

    name: str
    bounce_class: BounceClass
    pattern: re.Pattern[str]
    provider: str = ANY_PROVIDER
    status: re.Pattern[str] | None = None
    override: bool = False
    #: Lower-case words one of which any match contains (``literals.py``); ``None``: unknown.
    literals: frozenset[str] | None = None
    #: ``pattern`` for lowered text, case-sensitive (``literals.lowered_pattern``); ``None``:
    #: the pattern cannot be read that way and runs case-insensitively on the text.
    lowered_pattern: re.Pattern[str] | None = None
    #: ``lowered_pattern``'s top-level alternatives, each with the literals one of which its
    #: matches contain (:func:`_alternatives`); ``None``: searched whole.
    alternatives: tuple[tuple[frozenset[str], re.Pattern[str]], ...] | None = None

    def matches(self, status: str, text: str, provider: str, lowered: str | None = None) -> bool:
        """Whether this rule applies to the failure; ``lowered`` (``text.lower()``, computed
        once per failure) lets most rules answer no with substring tests, no regex scan."""
        if self.provider not in (ANY_PROVIDER, provider):
            return False
        if self.status is not None and not self.status.search(status):
            return False
        if self.literals is not None and lowered is not None:
            for literal in self.literals:
                if literal in lowered:
                    break
            else:
                return False
        if self.alternatives is not None and lowered is not None:
            # Only the alternatives whose words are there: a literal-led one searches fast,
            # while the whole alternation tries every alternative at most positions.
            # (Loops, not any() over generators: this runs for every rule and failure.)
            for literals, pattern in self.alternatives:
                for literal in literals:
                    if literal in lowered:
                        if pattern.search(lowered) is not None:
                            return True
                        break
            return False
        if self.lowered_pattern is not None and lowered is not None:
            return self.lowered_pattern.search(lowered) is not None
        return self.pattern.search(text) is not None


@dataclass(frozen=True)
class RuleTable:
    """Compiled rules in file order; ``source`` names the file for reports and errors."""

    rules: tuple[Rule, ...]
    source: str

    @functools.cached_property
    def overrides(self) -> tuple[Rule, ...]:
        """Rules checked before the RFC 3463 code table (computed once per table)."""
        return tuple(r for r in self.rules if r.override)

    @functools.cached_property
    def ordinary(self) -> tuple[Rule, ...]:
        """Rules checked after the specific RFC 3463 codes (computed once per table)."""
        return tuple(r for r in self.rules if not r.override)

    def for_provider(self, provider: str) -> tuple[tuple[Rule, ...], tuple[Rule, ...]]:
        """:attr:`overrides` and :attr:`ordinary` without the rules of other providers (each
        failure tries every rule in turn: most of the provider-specific ones never apply).
        Kept per provider: the names are the bounded set ``shared.providers`` gives."""
        found = self._by_provider.get(provider)
        if found is None:
            found = self._by_provider[provider] = (
                tuple(r for r in self.overrides if r.provider in (ANY_PROVIDER, provider)),
                tuple(r for r in self.ordinary if r.provider in (ANY_PROVIDER, provider)),
            )
        return found

    @functools.cached_property
    def _by_provider(self) -> dict[str, tuple[tuple[Rule, ...], tuple[Rule, ...]]]:
        return {}


def load_rules(path: Path | None = None) -> RuleTable:
    """The rule table from ``path``, or the one shipped with Postline; raises ConfigError."""
    if path is None:
        source = f"shared/bounceclass/{DEFAULT_RULES}"
        text = resources.files("shared.bounceclass").joinpath(DEFAULT_RULES).read_text("utf-8")
    else:
        source = str(path)
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(source, "", f"cannot read rule table: {exc.strerror}") from exc
    return parse_rules(text, source)


def parse_rules(text: str, source: str) -> RuleTable:
    """Validate and compile a rule table; errors name ``source`` and ``rule[i].key``."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML: {exc}") from exc
    spec = convert(raw, TableSpec, source)  # strict, errors name the key path
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, rule in enumerate(spec.rule):
        if rule.name in seen:
            raise ConfigError(source, f"rule[{index}].name", f"duplicate rule name {rule.name!r}")
        seen.add(rule.name)
        rules.append(
            Rule(
                name=rule.name,
                bounce_class=rule.class_,
                pattern=_compile(rule.pattern, source, f"rule[{index}].pattern"),
                provider=rule.provider,
                status=_compile(rule.status, source, f"rule[{index}].status")
                if rule.status
                else None,
                override=rule.override,
                literals=_fewest(pattern_literals(rule.pattern)),
                lowered_pattern=_lowered(rule.pattern),
                alternatives=_alternatives(rule.pattern),
            )
        )
    return RuleTable(rules=tuple(rules), source=source)


def _fewest(literals: frozenset[str] | None) -> frozenset[str] | None:
    """``literals`` without those that contain another (``literals.without_containing``)."""
    return None if literals is None else frozenset(without_containing(literals))


def _alternatives(pattern: str) -> tuple[tuple[frozenset[str], re.Pattern[str]], ...] | None:
    """The lowered pattern's top-level alternatives, compiled one by one, each with its
    literals; ``None`` when it has one alternative or cannot be split safely. A search of
    the whole finds a match exactly when one alternative's search does: refused are
    patterns without known literals (inline flags, lookarounds, odd classes), with back
    references (the groups are numbered anew) and any split that does not compile or
    does not join back to the pattern (a "|" inside a class)."""
    lowered = lowered_pattern(pattern)
    if lowered is None or pattern_literals(pattern) is None or _BACKREFERENCE.search(pattern):
        return None
    parts = top_level(lowered)
    if len(parts) < 2 or "|".join(parts) != lowered:
        return None
    found: list[tuple[frozenset[str], re.Pattern[str]]] = []
    for part in parts:
        options = required_options(part)
        if not options or not all(option.isascii() for option in options):
            return None
        try:
            found.append((frozenset(options), re.compile(part)))
        except re.error:
            return None
    return tuple(found)


_BACKREFERENCE = re.compile(r"\\[1-9]")


def _lowered(pattern: str) -> re.Pattern[str] | None:
    lowered = lowered_pattern(pattern)
    if lowered is None:
        return None
    try:
        return re.compile(lowered)
    except re.error:
        return None  # not expected (only literal letters change); then case-insensitive


def _compile(pattern: str, source: str, key: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(source, key, f"bad regular expression: {exc}") from exc

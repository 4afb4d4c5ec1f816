"""The literal words a regular expression's matches must contain, for cheap prefilters.

Owns reading a (simple) regex to find, per top-level alternative, plain text that every match
contains: a substring test (``in``) is far cheaper than a regex scan, and most texts contain
none of a pattern's words, so the regex runs only when one is there. Used by the reason
matcher (``reasons.py``) and the rule table (``rules.py``). Conservative: anything it does
not understand (inline flags, lookarounds, odd character classes) gives ``None``: no
prefilter, the regex always runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def pattern_literals(pattern: str) -> frozenset[str] | None:
    """Lower-case literals one of which every match of ``pattern`` contains (for a search
    with re.IGNORECASE on lowered text), or ``None`` when no such set is known."""
    if any(token in pattern for token in ("(?", "\\]", "[]", "[^]", "\\Q")):
        return None
    if any(set(found) & set("()|") for found in CHARACTER_CLASS.findall(pattern)):
        return None  # top_level would split or nest inside the class ("mail[|]box")
    literals: set[str] = set()
    for alternative in top_level(pattern):
        options = required_options(alternative)
        if not options or not all(option.isascii() for option in options):
            return None
        literals.update(option.lower() for option in options)
    return frozenset(literals)


#: A character class (those with "]" inside are refused before this is read).
CHARACTER_CLASS = re.compile(r"\[[^\]]*\]")


def without_containing(words: Iterable[str]) -> tuple[str, ...]:
    """``words`` (in order, each once) without those that contain another: where the longer
    one occurs the shorter does too, so "one of them occurs" keeps its answer with fewer
    scans of the text ("user-unknown" has 25 literals, 13 of which contain another)."""
    unique = dict.fromkeys(words)
    return tuple(w for w in unique if not any(o != w and o in w for o in unique))


def required_options(alternative: str) -> tuple[str, ...]:
    """Literals one of which every match of ``alternative`` contains: its longest plain run,
    else the branches of the required group of plain words whose shortest branch is the
    longest ("(spf|dkim|dmarc)"); () if none."""
    run = required_literal(alternative)
    if len(run) >= 3:
        return (run,)
    best: tuple[str, ...] = ()
    depth, start = 0, 0
    for i, char in enumerate(alternative):
        if char == "\\" or (i and alternative[i - 1] == "\\"):
            continue
        if char == "(":
            depth += 1
            start = i + 1 if depth == 1 else start
        elif char == ")":
            depth -= 1
            following = alternative[i + 1 : i + 2]
            if depth == 0 and not (following and following in _QUANTIFIERS):
                branches = tuple(required_literal(b) for b in top_level(alternative[start:i]))
                shortest = min(len(b) for b in branches)
                if shortest >= 2 and (not best or shortest > min(len(b) for b in best)):
                    best = branches
    return best


def top_level(pattern: str) -> list[str]:
    """``pattern`` split at its top-level ``|``."""
    parts, depth, current, i = [], 0, "", 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            current += pattern[i : i + 2]
            i += 2
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "|" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
        i += 1
    parts.append(current)
    return parts


_QUANTIFIERS = "?*{"


def required_literal(alternative: str) -> str:
    """The longest run of plain characters every match of ``alternative`` contains (outside
    groups, not made optional by a quantifier); "" when there is none."""
    best, run, depth, i = "", "", 0, 0
    while i < len(alternative):
        char = alternative[i]
        nxt = alternative[i + 1] if i + 1 < len(alternative) else ""
        literal = ""
        if char == "\\":
            escaped = nxt
            i += 2
            literal = escaped if escaped and not escaped.isalnum() else ""
        elif char == "[":
            i = alternative.index("]", i + 1) + 1
        elif char in "()":
            depth += 1 if char == "(" else -1
            i += 1
        elif char == "{":
            i = alternative.index("}", i + 1) + 1
        elif char in ".^$|+?*":
            i += 1
        else:
            literal = char
            i += 1
        following = alternative[i] if i < len(alternative) else ""
        if depth == 0 and literal and not (following and following in _QUANTIFIERS):
            run += literal
            best = max(best, run, key=len)
        else:
            run = ""
    return best


# Group openers whose text is no name or flag: lower-casing inside them changes nothing.
_PLAIN_GROUPS = ("(?:", "(?=", "(?!", "(?<=", "(?<!")
# Escapes that stand for a character by its code (\x41 is "A"): lowering the text would
# leave them unmatched, so patterns with them are not lowered.
_CODE_ESCAPES = frozenset("xuUN01234567")


def lowered_pattern(pattern: str) -> str | None:
    """``pattern`` for a case-sensitive search of lower-cased text that finds what a
    re.IGNORECASE search of the text finds, or ``None`` when that cannot be read off it.

    Its literal letters are lower-cased; escapes stay (``\\S`` is not ``\\s``). Refused: inline
    flags and named groups, escapes by character code, and character classes with an
    upper-case letter (``[A-z]`` spans punctuation). A case-sensitive scan of lowered text
    costs a fraction of a case-insensitive one (``re`` then skips impossible positions).
    """
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            escaped = pattern[i + 1 : i + 2]
            if escaped in _CODE_ESCAPES:
                return None
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if char.isupper():
                return None
            in_class = char != "]"
        elif char == "[":
            # A "]" first in a class ("[]a]", "[^]a]") is a literal, not its end.
            head = (
                "[^]"
                if pattern.startswith("[^]", i)
                else "[]"
                if pattern.startswith("[]", i)
                else "["
            )
            out.append(head)
            i += len(head)
            in_class = True
            continue
        elif pattern.startswith("(?", i) and not pattern.startswith(_PLAIN_GROUPS, i):
            return None
        out.append(char.lower() if not in_class else char)
        i += 1
    return "".join(out)

"""Where the links and the end of the body are in an HTML part's text.

The text is never re-serialised: the stdlib ``html.parser`` finds the ``<a>`` and ``<area>``
start tags (skipping comments, ``<script>`` and ``<style>`` as a browser does) and the last
``</body>``, and reports where each starts; the ``href`` value's exact span inside the raw
tag is then found here, so a rewrite changes those characters and nothing else. A tag whose
``href`` this module reads differently from the parser is left alone rather than guessed at.

A link is a candidate only when it is an absolute http(s) URL with a host (so never
``mailto:``, ``tel:``, ``sms:``, ``javascript:``, ``#anchors`` or relative URLs) and its tag
has no ``data-postline-notrack`` attribute. Which candidates are excluded for other reasons
(the unsubscribe URLs, the tracking host) is the caller's decision.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlsplit

NOTRACK = "data-postline-notrack"
_LINK_TAGS = frozenset({"a", "area"})
#: One attribute of a raw start tag: its name and its value, double-, single- or unquoted.
_ATTRIBUTE = re.compile(
    r"""[\s/]*(?P<name>[^\s/>=][^\s/>=]*)"""
    r"""(?:\s*=\s*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<uq>[^\s>]*)))?"""
)
#: WHATWG URL parsing strips leading and trailing C0 controls and spaces ...
_C0_AND_SPACE = "".join(chr(i) for i in range(0x21))
#: ... and removes every tab and newline inside.
_TAB_NEWLINE = re.compile(r"[\t\n\r]")
_HTTP = re.compile(r"https?://", re.IGNORECASE)


@dataclass(frozen=True)
class Spot:
    """A URL in a part's text: the characters to replace and the URL a reader follows."""

    start: int
    end: int
    url: str


@dataclass
class Scan:
    """What :func:`scan` found in an HTML text."""

    links: list[Spot] = field(default_factory=list)
    body_end: int | None = None  # where the last ``</body>`` starts


def followed_url(value: str) -> str:
    """The URL a browser follows for an attribute value (entities already decoded)."""
    return _TAB_NEWLINE.sub("", value).strip(_C0_AND_SPACE)


def trackable(url: str) -> bool:
    """Whether ``url`` is an absolute http(s) URL with a host, writable into a token."""
    if not _HTTP.match(url):
        return False
    try:
        url.encode("utf-8")  # undecodable bytes of the part (surrogates) cannot go in a token
        return bool(urlsplit(url).hostname)
    except (ValueError, UnicodeEncodeError):
        return False


class _Finder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[tuple[int, int], str, str | None]] = []  # position, raw, href
        self.body_end: tuple[int, int] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _LINK_TAGS:
            raw = self.get_starttag_text() or ""
            href = next((value for name, value in attrs if name == "href"), None)
            self.tags.append((self.getpos(), raw, href))

    def handle_endtag(self, tag: str) -> None:
        if tag == "body":
            self.body_end = self.getpos()


def _offsets(text: str) -> list[int]:
    """Where each line starts (the parser reports positions as line and column)."""
    return [0] + [m.end() for m in re.finditer("\n", text)]


def _href(raw: str) -> tuple[int, int, str, bool] | None:
    """The first ``href`` value's span in ``raw``, its decoded value, and whether the tag
    has a ``data-postline-notrack`` attribute; ``None`` without an ``href`` value."""
    name_end = re.match(r"<[^\s/>]+", raw)
    pos = name_end.end() if name_end else len(raw)
    found: tuple[int, int, str] | None = None
    notrack = False
    while (match := _ATTRIBUTE.match(raw, pos)) is not None and match.end() > pos:
        pos = match.end()
        name = match.group("name").lower()
        notrack = notrack or name == NOTRACK
        group = next((g for g in ("dq", "sq", "uq") if match.group(g) is not None), None)
        if name == "href" and found is None and group is not None:
            start, end = match.span(group)
            found = (start, end, html.unescape(raw[start:end]))
    return None if found is None else (*found, notrack)


def scan(text: str) -> Scan:
    """The candidate links of an HTML text and where its last ``</body>`` starts."""
    finder = _Finder()
    finder.feed(text)
    finder.close()
    lines = _offsets(text)
    result = Scan()
    for (line, column), raw, parsed in finder.tags:
        start = lines[line - 1] + column
        href = _href(raw)
        if href is None or parsed is None or text[start : start + len(raw)] != raw:
            continue
        value_start, value_end, value, notrack = href
        if notrack or value != parsed:
            continue  # marked, or read differently than the parser did: leave it alone
        url = followed_url(value)
        if trackable(url):
            result.links.append(Spot(start + value_start, start + value_end, url))
    if finder.body_end is not None:
        line, column = finder.body_end
        result.body_end = lines[line - 1] + column
    return result

"""Where the links and the end of the body are in an HTML part's text.

The text is never re-serialised: a small tokenizer walks it once, in linear time, the way
the HTML standard's tokenizer does for what matters here (comments, ``<!...>`` and ``<?...>``
declarations, the raw text of ``<script>``, ``<style>`` and their kin, start and end tags
with double-, single- or unquoted attributes), and reports the span of each ``<a>`` and
``<area>`` ``href`` value and where the last ``</body>`` starts, so a rewrite changes those
characters and nothing else. (The stdlib ``html.parser`` of Python 3.11 takes quadratic time
on unclosed tags: 60 KB of ``<a `` took 40 s, which a sender could use to stall the signer.)

A link is a candidate only when it is an absolute http(s) URL with a host (so never
``mailto:``, ``tel:``, ``sms:``, ``javascript:``, ``#anchors`` or relative URLs) and its tag
has no ``data-postline-notrack`` attribute. Character references are decoded as a browser
decodes them in an attribute value: ``&copy=1`` in a query string stays as it is (HTML
standard 13.2.5.73: a legacy reference without ``;`` followed by ``=`` or an alphanumeric).
Which candidates are excluded for other reasons (the unsubscribe URLs, the tracking host) is
the caller's decision.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.entities import html5
from urllib.parse import urlsplit

NOTRACK = "data-postline-notrack"
_LINK_TAGS = frozenset({"a", "area"})
#: Elements whose content is text up to their end tag (HTML standard 13.2.5.2-13.2.5.5).
_RAW_TEXT = frozenset(
    {"script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes"}
)
_MARKUP = re.compile(r"<(?:(!--)|(/?)([A-Za-z][^\s/>]*)|[!?])")
#: One attribute of a start tag: its name and its value, double-, single- or unquoted.
_ATTRIBUTE = re.compile(
    r"""[\s/]*(?P<name>[^\s/>=][^\s/>=]*)"""
    r"""(?:\s*=\s*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<uq>[^\s>]*)))?"""
)
_REFERENCE = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z][A-Za-z0-9]*;?)")
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


def attribute_value(raw: str) -> str:
    """A raw attribute value with its character references decoded as a browser does."""

    def decode(match: re.Match[str]) -> str:
        ref = match.group(0)
        if ref.endswith(";") or ref[1] == "#":
            return html.unescape(ref)
        name = match.group(1)
        for end in range(len(name), 0, -1):
            if name[:end] in html5:  # the longest legacy name without ";"
                after = raw[match.end() : match.end() + 1]
                if end < len(name) or after == "=":
                    return ref  # followed by an alphanumeric or "=": left as written
                return html5[name[:end]]
        return ref

    return _REFERENCE.sub(decode, raw)


def followed_url(value: str) -> str:
    """The URL a browser follows for an attribute value (references already decoded)."""
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


def _attributes(text: str, pos: int, result: Scan, link: bool) -> int:
    """Read a start tag's attributes from ``pos``; where the tag ends (-1: at the end of
    the text, so it is no tag). Adds the tag's link to ``result`` when ``link``."""
    href: tuple[int, int] | None = None
    notrack = False
    while pos < len(text) and text[pos] != ">":
        match = _ATTRIBUTE.match(text, pos)
        if match is None or match.end() == pos:
            pos += 1  # a stray "=" or space before ">": skip it, as the tokenizer does
            continue
        pos = match.end()
        name = match.group("name").lower()
        notrack = notrack or name == NOTRACK
        group = next((g for g in ("dq", "sq", "uq") if match.group(g) is not None), None)
        if name == "href" and href is None and group is not None:
            href = match.span(group)  # the first href counts, as in a browser
    if pos >= len(text):
        return -1  # end of text inside a tag: the tag is dropped (HTML standard 13.2.5.32)
    if link and href is not None and not notrack:
        url = followed_url(attribute_value(text[href[0] : href[1]]))
        if trackable(url):
            result.links.append(Spot(href[0], href[1], url))
    return pos + 1


def scan(text: str) -> Scan:
    """The candidate links of an HTML text and where its last ``</body>`` starts."""
    result = Scan()
    pos = 0
    while (start := text.find("<", pos)) >= 0:
        markup = _MARKUP.match(text, start)
        if markup is None:
            pos = start + 1  # a "<" that opens nothing is text
            continue
        if markup.group(1):  # a comment runs to the next "-->"
            end = text.find("-->", markup.end())
            pos = len(text) if end < 0 else end + 3
            continue
        name = (markup.group(3) or "").lower()
        if not name:  # <!DOCTYPE ...>, <![CDATA[...]]>, <?...>: to the next ">"
            end = text.find(">", markup.end())
            pos = len(text) if end < 0 else end + 1
            continue
        closing = bool(markup.group(2))
        if closing and name == "body":
            result.body_end = start
        pos = _attributes(text, markup.end(), result, not closing and name in _LINK_TAGS)
        if pos < 0:
            break
        if not closing and name in _RAW_TEXT:
            end_tag = re.compile(r"</" + re.escape(name) + r"[\s/>]", re.IGNORECASE)
            found = end_tag.search(text, pos)
            pos = len(text) if found is None else found.start()
    return result

"""Bare http(s) URLs in a text/plain part (clicks in text parts, only when asked).

A URL runs to the first space, ``<``, ``>`` or ``"``; punctuation that ends a sentence
(``.,;:!?'"``) and a closing parenthesis without its opening one are not part of it, as mail
clients decide when they make such a URL clickable.
"""

from __future__ import annotations

import re

from services.signer.tracking.html import Spot, trackable

_URL = re.compile(r"\bhttps?://[^\s<>\"]+", re.IGNORECASE)
_TRAILING = ".,;:!?'\""


def _trim(url: str) -> str:
    while url and (url[-1] in _TRAILING or (url[-1] == ")" and url.count("(") < url.count(")"))):
        url = url[:-1]
    return url


def bare_urls(text: str) -> list[Spot]:
    """The trackable URLs written out in ``text``, in order."""
    spots = []
    for match in _URL.finditer(text):
        url = _trim(match.group())
        if trackable(url):
            spots.append(Spot(match.start(), match.start() + len(url), url))
    return spots

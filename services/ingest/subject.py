"""The Subject of a message as people read it, for the ``accepted`` event.

RFC 2047 encoded words (``=?utf-8?q?...?=``) are decoded, raw UTF-8 (RFC 6532) is kept,
folding and runs of blanks become one space, control characters go, and the result is cut
to :data:`MAX_SUBJECT` characters: the reporting store searches it by prefix and shows it
in a message's history. A malformed encoded word is kept as written rather than refusing
the message: the subject is a report field, not something ingest checks.
"""

from __future__ import annotations

import re
from email.errors import HeaderParseError
from email.header import decode_header, make_header

from services.ingest.headers import Message

#: Characters kept: a subject is a search key and a column, not the message.
MAX_SUBJECT = 200

_BLANKS = re.compile(r"\s+")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def decode(value: str) -> str:
    """``value`` (an unfolded header value) with its encoded words decoded."""
    try:
        text = str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        text = value  # an unknown charset or broken base64: shown as written
    text = _CONTROLS.sub("", _BLANKS.sub(" ", text))
    return text.strip()[:MAX_SUBJECT]


def subject(message: Message) -> str:
    """The decoded Subject of ``message`` ("" without one; the first when several)."""
    values = message.get("subject")
    return decode(values[0]) if values else ""

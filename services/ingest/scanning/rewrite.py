"""The verdict's marks on the message: headers added or removed, the Subject rewritten.

Applied at ingest, before the signer signs, so our own DKIM signature covers them. A message
the client already signed keeps its signature valid: a field its ``DKIM-Signature`` covers
(``h=``) is never removed or rewritten (the mark goes in an added header instead), and adding
a field it does not cover leaves the signature intact (RFC 6376 5.4). Every other byte of the
message stays as it was (``headers.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.header import Header

from services.ingest import headers
from services.ingest.headers import Field, Message
from services.ingest.scanning.rspamd import Verdict

#: Added to a tagged message when the verdict names no headers of its own.
SPAM_FLAG = ("X-Spam", "Yes")
_FIELD_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]{1,76}$")
_LINE_BREAK = re.compile(r"[\r\n]+[ \t]*")


@dataclass(frozen=True)
class Marked:
    """The message with the verdict's marks, and what could not be done."""

    data: bytes
    note: str = ""  # e.g. why the Subject was kept


def signed_fields(message: Message) -> frozenset[str]:
    """The field names (lower case) covered by any ``DKIM-Signature`` already in the message."""
    names: set[str] = set()
    for value in message.get("dkim-signature"):
        for tag in value.split(";"):
            key, sep, listed = tag.partition("=")
            if sep and key.strip().lower() == "h":
                names.update(n.strip().lower() for n in re.sub(r"\s", "", listed).split(":"))
    names.discard("")
    return frozenset(names)


def mark(data: bytes, verdict: Verdict, *, rewrite_subject: bool) -> Marked:
    """``data`` with the verdict's headers (or :data:`SPAM_FLAG`) and, when asked and
    allowed, its new Subject."""
    message = headers.parse(data)
    signed = signed_fields(message)
    note = ""
    removed = {n.lower() for n in verdict.remove_headers} - signed
    fields = [f for f in message.fields if f.name not in removed]
    added = [(n, v) for n, v in verdict.add_headers if _FIELD_NAME.match(n)]
    if rewrite_subject and verdict.subject:
        if "subject" in signed:
            note = "subject kept: the sender's DKIM signature covers it"
        else:
            fields = [f for f in fields if f.name != "subject"]
            added.append(("Subject", _encoded(verdict.subject)))
    if not added or note:
        added.insert(0, SPAM_FLAG)
    new = [Field(n.lower(), f"{n}: {_one_line(v)}\r\n".encode()) for n, v in added]
    return Marked(Message(new + fields, message.rest).to_bytes(), note)


def _one_line(value: str) -> str:
    # A value from the scanner must never start a new field or end the header section.
    return _LINE_BREAK.sub(" ", value).strip()


def _encoded(text: str) -> str:
    if text.isascii():
        return text
    return Header(text, "utf-8").encode(maxlinelen=998)

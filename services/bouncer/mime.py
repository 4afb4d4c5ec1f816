"""The parsed form of a message at the bounce domain: one parse, cheap repeated reads.

Owns parsing raw bytes into a tree of :class:`BounceMessage` (the standard library's
lenient ``compat32`` parser, which reads ``message/delivery-status`` into field blocks).
The parsers ask each part for its content type and a few headers many times over (every
parser walks the tree; measured on the corpora with cProfile: about 30 content-type reads
per message, a linear scan of the part's headers each); a :class:`BounceMessage` answers
them from a per-part index that any change to the part's headers discards.
"""

from __future__ import annotations

import email
from email.message import Message
from email.policy import compat32
from typing import Any


class BounceMessage(Message):
    """A ``Message`` whose header and content-type reads are indexed once per part."""

    def __init__(self, policy: Any = compat32) -> None:
        super().__init__(policy)
        self._index: dict[str, Any] | None = None
        self._ctype: str | None = None

    def get(self, name: str, failobj: Any = None) -> Any:
        """The first value of header ``name`` (as ``Message.get``), from the index."""
        index = self._index
        if index is None:
            index = {}
            for key, value in self.raw_items():
                index.setdefault(key.lower(), (key, value))
            self._index = index
        found = index.get(name.lower())
        if found is None:
            return failobj
        return self.policy.header_fetch_parse(*found)

    def get_content_type(self) -> str:
        """``Message.get_content_type``, read once."""
        if self._ctype is None:
            self._ctype = super().get_content_type()
        return self._ctype

    def _changed(self) -> None:
        self._index = None
        self._ctype = None

    # Every way compat32's Message changes its headers (or its default type) forgets the
    # index: the parser itself adds headers one by one and sets digest parts' default type.
    def __setitem__(self, name: str, val: Any) -> None:
        super().__setitem__(name, val)
        self._changed()

    def __delitem__(self, name: str) -> None:
        super().__delitem__(name)
        self._changed()

    def set_raw(self, name: str, value: Any) -> None:
        """``Message.set_raw``; forgets the index."""
        super().set_raw(name, value)
        # Inlined _changed(): the parser calls this once per header line.
        self._index = None
        self._ctype = None

    def add_header(self, _name: str, _value: str, **_params: Any) -> None:
        """``Message.add_header``; forgets the index."""
        super().add_header(_name, _value, **_params)
        self._changed()

    def replace_header(self, _name: str, _value: Any) -> None:
        """``Message.replace_header``; forgets the index."""
        super().replace_header(_name, _value)
        self._changed()

    def set_default_type(self, ctype: str) -> None:
        """``Message.set_default_type``; forgets the content type."""
        super().set_default_type(ctype)
        self._changed()

    def set_boundary(self, boundary: str) -> None:
        """``Message.set_boundary``; forgets the index."""
        super().set_boundary(boundary)
        self._changed()


def parse_bytes(raw: bytes) -> Message:
    """``raw`` parsed leniently (compat32) into :class:`BounceMessage` parts."""
    return email.message_from_bytes(raw, _class=BounceMessage, policy=compat32)


def parse_text(text: str) -> Message:
    """Like :func:`parse_bytes` for text (a message quoted inside another's body)."""
    return email.message_from_string(text, _class=BounceMessage, policy=compat32)

"""A message cut once into the bytes every copy shares and the parts each recipient's
copy rewrites, then rendered per recipient.

Cutting (:func:`cut`) walks the MIME structure, decodes each candidate part and finds its
links and the place of its pixel once per message; rendering (:func:`render`) only joins
text around the holes, then re-encodes the changed parts. Links are numbered in message
order from 1 across all parts (the number goes into the link's token and the ``clicked``
event); hole 0 is the open pixel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.signer.tracking import mime
from services.signer.tracking.html import Spot, scan
from services.signer.tracking.plaintext import bare_urls

#: The open pixel, before ``</body>``: 1x1, no border, empty alt so nothing shows when
#: images are blocked (``{src}`` is an https URL of URL-safe characters only).
PIXEL = '<img src="{src}" width="1" height="1" alt="" style="border:0;width:1px;height:1px" />'


@dataclass(frozen=True)
class Hole:
    """Where a tracked URL goes: link ``number`` (its original ``url``), or 0, the pixel."""

    number: int
    url: str = ""


@dataclass(frozen=True)
class Part:
    """A rewritable part: its text around the holes."""

    part: mime.TextPart
    pieces: tuple[str | Hole, ...]


@dataclass(frozen=True)
class Template:
    """A message as unchanged byte runs and rewritable parts, in order."""

    message: bytes
    segments: tuple[bytes | Part, ...]
    links: int  # how many links are rewritten (numbered 1..links)
    pixels: int  # how many parts got the pixel


def _holes(text: str, spots: list[Spot], pixel_at: int | None, first: int) -> list[str | Hole]:
    edits: list[tuple[int, int, Hole]] = [
        (spot.start, spot.end, Hole(first + i, spot.url)) for i, spot in enumerate(spots)
    ]
    if pixel_at is not None:
        edits.append((pixel_at, pixel_at, Hole(0)))
    edits.sort(key=lambda edit: (edit[0], edit[2].number == 0))
    pieces: list[str | Hole] = []
    pos = 0
    for start, end, hole in edits:
        pieces += [text[pos:start], hole]
        pos = end
    pieces.append(text[pos:])
    return pieces


def _pixel_place(text: str, body_end: int | None) -> int:
    """Before the last ``</body>``, else at the end of the text before its last line breaks."""
    return body_end if body_end is not None else len(text.rstrip("\r\n"))


def cut(
    message: bytes,
    *,
    opens: bool,
    clicks: bool,
    text_clicks: bool,
    keep: Callable[[str], bool],
) -> Template:
    """The template of ``message``; ``keep(url)`` says a link must stay as it is.

    Raises ``shared.errors.Untrackable`` (from ``mime``) when the message cannot be
    rewritten safely. A template without parts means there is nothing to track.
    """
    segments: list[bytes | Part] = []
    pos = 0
    links = pixels = 0
    for part in mime.text_parts(message, plain=clicks and text_clicks):
        text = mime.decode(message, part)
        pixel_at: int | None = None
        if part.subtype == "html":
            found = scan(text)
            spots = [s for s in found.links if not keep(s.url)] if clicks else []
            if opens:
                pixel_at = _pixel_place(text, found.body_end)
        else:
            spots = [s for s in bare_urls(text) if not keep(s.url)]
        if not spots and pixel_at is None:
            continue
        segments += [
            message[pos : part.header_start],
            Part(part, tuple(_holes(text, spots, pixel_at, links + 1))),
        ]
        pos = part.body_end
        links += len(spots)
        pixels += pixel_at is not None
    segments.append(message[pos:])
    return Template(message, tuple(s for s in segments if s != b""), links, pixels)


def render(template: Template, url: Callable[[Hole], str]) -> bytes:
    """One copy of the message with each hole filled by ``url(hole)``."""
    out: list[bytes] = []
    for segment in template.segments:
        if isinstance(segment, bytes):
            out.append(segment)
            continue
        text = "".join(
            piece
            if isinstance(piece, str)
            else (PIXEL.format(src=url(piece)) if piece.number == 0 else url(piece))
            for piece in segment.pieces
        )
        part = segment.part
        header, body = mime.encode(template.message, part, text)
        out += [header, template.message[part.header_end : part.body_start], body]
    return b"".join(out)

"""Text of bounce parts and headers in the charsets bounces really come in.

Owns turning a part's bytes (or an RFC 2047 header) into text when the label is wrong or
the charset is one Python's codecs read too strictly, above all ISO-2022-JP (RFC 1468),
which Japanese carriers and ISPs use for their notices:

- a 7-bit body holding ISO-2022-JP escape sequences is ISO-2022-JP whatever its label says
  (the label is often missing, i.e. us-ascii by RFC 2045 5.2, or a generic one);
- the ISO-2022-JP of Japanese mailers is a superset: half-width katakana (``ESC ( I``, JIS
  X 0201), JIS X 0212 and the NEC/IBM extension rows (CP50220/CP50221). Python's
  ``iso2022_jp`` refuses them, so the supersets are tried, and as a last resort each
  escape-delimited run is decoded on its own so that one bad run costs only itself;
- Shift_JIS and EUC-JP labels are read with the vendor supersets mailers write (cp932).

It does not decide what the text means (the parsers do).
"""

from __future__ import annotations

import re
from email.errors import HeaderParseError
from email.header import decode_header

# ISO-2022-JP designations (RFC 1468 and its supersets): JIS X 0208 (ESC $ B, ESC $ @),
# JIS X 0201 Roman and Katakana (ESC ( J, ESC ( I), JIS X 0212/0213 (ESC $ ( D/O/Q).
_JP_ESCAPES = (b"\x1b$B", b"\x1b$@", b"\x1b(J", b"\x1b(I", b"\x1b$(D", b"\x1b$(O", b"\x1b$(Q")
_ESCAPE_RUN = re.compile(rb"(\x1b(?:\$\(?[@-Z]|\([A-Z]))")
# Tried in order on ISO-2022-JP text: the RFC's, then the supersets Japanese mailers write.
_JP_CODECS = ("iso2022_jp", "iso2022_jp_ext", "iso2022_jp_2004", "iso2022_jp_2")
# Labels whose common superset is what was really written.
_SUPERSETS = {
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "euc-jp": "euc_jis_2004",
    "x-euc-jp": "euc_jis_2004",
    "ks_c_5601-1987": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
}


def is_iso2022jp(payload: bytes) -> bool:
    """Whether ``payload`` is 7-bit text with ISO-2022-JP escape sequences in it."""
    return b"\x1b" in payload and payload.isascii() and any(e in payload for e in _JP_ESCAPES)


def decode_text(payload: bytes, charset: str | None) -> str:
    """``payload`` as text: its labelled charset, corrected as the module docstring says;
    bytes no reading accepts become U+FFFD (never raises)."""
    label = (charset or "").strip().lower()
    if label.startswith("iso-2022-jp") or (
        not label.startswith("iso-2022-") and is_iso2022jp(payload)
    ):
        return decode_iso2022jp(payload)
    codec = _SUPERSETS.get(label, label or "utf-8")
    try:
        return payload.decode(codec, errors="replace")
    except LookupError:
        return payload.decode("latin-1")


def decode_iso2022jp(payload: bytes) -> str:
    """ISO-2022-JP text, accepting the supersets Japanese mailers write."""
    for codec in _JP_CODECS:
        try:
            return payload.decode(codec)
        except UnicodeDecodeError:
            continue
    # Mixed or damaged: decode run by run (each run is an escape and what follows it until
    # the next escape), so that a run no codec reads costs only that run.
    pieces = _ESCAPE_RUN.split(payload)
    out = [pieces[0].decode("ascii", errors="replace")]
    for escape, run in zip(pieces[1::2], pieces[2::2], strict=True):
        out.append(_decode_run(escape + run))
    return "".join(out)


def _decode_run(run: bytes) -> str:
    if run.startswith((b"\x1b$B", b"\x1b$@")):
        # JIS X 0208 as Microsoft's CP50220/CP50221 write it, with the NEC and IBM rows:
        # read through Shift_JIS (cp932), which holds the same table plus those rows.
        return _jis_to_sjis(run[3:]).decode("cp932", errors="replace")
    for codec in _JP_CODECS:
        try:
            return run.decode(codec)
        except UnicodeDecodeError:
            continue
    return run.decode("iso2022_jp_ext", errors="replace")


def _jis_to_sjis(jis: bytes) -> bytes:
    """Two-byte JIS X 0208 codes (0x21-0x7E each) as Shift_JIS bytes; line breaks and
    other controls inside the run (broken mailers do not switch back before them) pass."""
    out = bytearray()
    index = 0
    while index < len(jis):
        first = jis[index]
        if not 0x21 <= first <= 0x7E or index + 1 >= len(jis):
            out.append(first if first < 0x80 else 0x3F)
            index += 1
            continue
        second = jis[index + 1]
        lead = (first + 1) // 2 + 0x70
        lead += 0x40 if lead > 0x9F else 0
        # Odd rows take the first half of the Shift_JIS trail range (skipping 0x7F).
        trail = second + 0x1F + (second >= 0x60) if first % 2 else second + 0x7E
        out += bytes((lead, trail & 0xFF))
        index += 2
    return bytes(out)


def header_text(value: str) -> str:
    """A header's text: RFC 2047 encoded words decoded (with :func:`decode_text`), and raw
    ISO-2022-JP (sent unencoded by old Japanese mailers) read as such."""
    if "=?" not in value and "\x1b" not in value:
        return value
    try:
        parts = decode_header(value)
    except HeaderParseError:
        return value
    out = []
    for chunk, charset in parts:
        data = chunk.encode("latin-1", errors="replace") if isinstance(chunk, str) else chunk
        out.append(decode_text(data, charset))
    return "".join(out)

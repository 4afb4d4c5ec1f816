"""The attachment check at the end of DATA: refused file types (by name, inside zips, and
programs under another name), names that disguise their type, sizes and counts.

The rules are ``[ingest.content]`` with the tenant's ``settings.content`` over them
(:func:`rules`). Attachments are found by ``parts.py``; a text message with no attachment
header skips the walk. A refusal names the attachment (the sender's own file) and the rule:
``550 5.7.1`` (check ``attachment``, or ``attachment_count``), ``552 5.3.4`` for a size
(``attachment_size``), ``550 5.6.0`` for a MIME tree deeper than the walk
(``mime_structure``). It is answered before the 250, so the sender keeps the message.

It does not scan content for malware or spam (the content scanner does) and does not open
archives other than zip, nor decompress anything.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from services.ingest import parts, replies
from services.ingest.config import ContentConfig
from services.ingest.headers import Message
from services.ingest.policy.base import Decision, PolicyState, SessionInfo, Transaction
from shared.wire.records import ContentRules

#: Bidirectional overrides make the characters after them display in the other direction:
#: "invoice\u202eFDP.exe" shows as "invoiceexe.PDF" (MITRE ATT&CK T1036.002). The isolates
#: and embeddings only reorder characters without a strong direction, and Arabic and Hebrew
#: names use them, so only the two overrides are refused.
_OVERRIDES = frozenset("\u202d\u202e")
#: ELF's class (32/64-bit) and data (byte order) bytes are 1 or 2 (the System V ABI).
_ELF_CLASSES = (b"\x01", b"\x02")
#: Mach-O magic numbers, 32 and 64-bit, either byte order (fat binaries share CAFEBABE with
#: Java class files and are left out).
_MACHO = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe")
_ZIP = "zip"
_EOCD = b"PK\x05\x06"  # end of central directory record (APPNOTE 4.3.16)
_EOCD64_LOCATOR = b"PK\x06\x07"  # zip64 end of central directory locator (4.3.15)
#: An EOCD is 22 bytes plus a comment of at most 65535: it starts within this of the end.
_EOCD_SEARCH = 22 + 65535


@dataclass(frozen=True)
class Rules:
    """The content policy for one tenant's message: the global one with the tenant's over it."""

    blocked: frozenset[str]
    allowed: frozenset[str]
    inspect_archives: bool
    max_archive_entries: int
    detect_executables: bool
    max_attachment_size: int  # 0: none
    max_attachments: int  # 0: none

    @property
    def active(self) -> bool:
        """Whether any rule could refuse an attachment."""
        return bool(
            self.blocked
            or self.detect_executables
            or self.inspect_archives
            or self.max_attachment_size
            or self.max_attachments
        )


def rules(config: ContentConfig, own: ContentRules) -> Rules:
    """``config`` with the tenant's ``own`` rules over it: its blocked extensions added, its
    allowed ones taken off, a non-zero size or count instead of the global one."""
    allowed = frozenset(own.allowed_extensions)
    blocked = frozenset(config.blocked_extensions).union(own.blocked_extensions) - allowed
    return Rules(
        blocked=blocked,
        allowed=allowed,
        inspect_archives=config.inspect_archives,
        max_archive_entries=config.max_archive_entries,
        detect_executables=config.detect_executables,
        max_attachment_size=own.max_attachment_size or int(config.max_attachment_size),
        max_attachments=own.max_attachments or config.max_attachments,
    )


def attachments(
    state: PolicyState, session: SessionInfo, txn: Transaction, data: bytes, msg: Message
) -> Decision | None:
    """The message's attachments against the tenant's content rules."""
    if not parts.may_have_attachments(msg):
        return None
    own = rules(state.config.content, state.tenant(txn.tenant).settings.content)
    if not own.active:
        return None  # every rule off: nothing to walk for
    try:
        found = parts.find(data, msg)
    except parts.TooDeep:
        return Decision(replies.MIME_TOO_DEEP, "mime_structure")
    return judge(found, own)


def judge(found: list[parts.Part], own: Rules) -> Decision | None:
    """The first refusal among ``found``: the count, then each part's names, size, content
    and (for a zip) the names inside it."""
    count = sum(1 for part in found if part.attachment)
    if own.max_attachments and count > own.max_attachments:
        reply = replies.too_many_attachments(count, own.max_attachments)
        return Decision(reply, "attachment_count")
    for part in found:
        decision = _judge_part(part, own)
        if decision is not None:
            return decision
    return None


def _judge_part(part: parts.Part, own: Rules) -> Decision | None:
    shown = part.names[0] if part.names else ""
    for name in part.names:
        why = name_problem(name, own.blocked)
        if why:
            return Decision(replies.attachment_refused(name, why), "attachment")
    limit = own.max_attachment_size
    if limit and part.attachment and part.encoded_size > limit:
        size = part.size()  # decoded is never larger than encoded: count only past the limit
        if size > limit:
            return Decision(replies.attachment_too_big(shown, size, limit), "attachment_size")
    extensions = {extension(name) for name in part.names}
    if own.detect_executables and not extensions & own.allowed:
        head = part.head()
        offset = pe_offset(head)
        if offset and offset > len(head) - 4:  # a PE header placed further in: read to it
            head = part.head(offset + 4)
        kind = program(head)
        if kind:
            why = f"it is a {kind} program under a name that does not say so"
            return Decision(replies.attachment_refused(shown, why), "attachment")
    if own.inspect_archives and _ZIP in extensions:
        why = archive_problem(part.decoded(), own)
        if why:
            zipped = next(n for n in part.names if extension(n) == _ZIP)
            return Decision(replies.attachment_refused(zipped, why), "attachment")
    return None


def cleaned(name: str) -> str:
    """The name as Windows would store it: the last path component, without the trailing
    dots and spaces Windows drops ("evil.exe. ." is evil.exe), lower case."""
    base = name.replace("\\", "/").rpartition("/")[2]
    return base.strip().rstrip(". \t").lower()


def extension(name: str) -> str:
    """The last extension of ``name`` after :func:`cleaned` ("" for none). A name that is
    only an extension (".js", "x/.exe") has one: Windows opens such a file by it."""
    _, dot, ext = cleaned(name).rpartition(".")
    return ext if dot else ""


def name_problem(name: str, blocked: frozenset[str]) -> str:
    """Why a file name is refused ("" when it is not): a direction override, or a blocked
    last extension (of the name, and of the name cut at a NUL, where old code stops)."""
    if _OVERRIDES.intersection(name):
        return "its name holds a text direction override (U+202E, U+202D) that disguises its type"
    for candidate in _candidates(name):
        ext = extension(candidate)
        if ext in blocked:
            return f"file type .{ext} is not accepted"
    return ""


def _candidates(name: str) -> Iterator[str]:
    yield name
    if "\x00" in name:
        yield name.partition("\x00")[0]


def pe_offset(head: bytes) -> int:
    """Where an MZ header says the PE header is (its e_lfanew, at 0x3C); 0 for none."""
    if head[:2] != b"MZ" or len(head) < 0x40:
        return 0
    return int.from_bytes(head[0x3C:0x40], "little")


def program(head: bytes) -> str:
    """The kind of program ``head`` (a file's first bytes) starts, or "": a Windows PE (an
    MZ header whose offset at 0x3C points at "PE\\0\\0"), a Linux ELF, a macOS Mach-O."""
    offset = pe_offset(head)
    if offset and head[offset : offset + 4] == b"PE\x00\x00":
        return "Windows (PE)"
    if head[:4] == b"\x7fELF" and head[4:5] in _ELF_CLASSES and head[5:6] in _ELF_CLASSES:
        return "Linux (ELF)"
    if head[:4] in _MACHO:
        return "macOS (Mach-O)"
    return ""


def archive_problem(data: bytes, own: Rules) -> str:
    """Why a zip is refused ("" when it is not): it cannot be read, lists more entries than
    ``own.max_archive_entries``, or holds a name :func:`name_problem` refuses. Only the
    central directory is read (``zipfile`` decompresses nothing until a member is opened);
    an encrypted zip's names are in the clear there too."""
    entries = _entry_count(data)
    if entries is None:
        return "it is not a zip file that can be read"
    if entries > own.max_archive_entries:
        return f"archive lists more than {own.max_archive_entries} files to inspect"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [info.filename for info in archive.infolist()]
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,  # a "version needed" zipfile does not know: a corrupt header
        ValueError,
        EOFError,
        OverflowError,
        struct.error,
    ):
        return "it is not a zip file that can be read"
    for inner in names:
        if inner.endswith("/"):
            continue  # a directory entry
        why = name_problem(inner, own.blocked)
        if why:
            return f'it holds "{replies.shown_name(inner, 60)}" ({why})'
    return ""


def _entry_count(data: bytes) -> int | None:
    """The entry count the zip's end record gives (zip64's when it has one), read before
    ``zipfile`` builds an object per entry; ``None`` when there is no end record."""
    at = data.rfind(_EOCD, max(0, len(data) - _EOCD_SEARCH))
    if at < 0 or len(data) < at + 22:
        return None
    (count,) = struct.unpack_from("<H", data, at + 10)
    locator = at - 20
    if count == 0xFFFF and locator >= 0 and data[locator : locator + 4] == _EOCD64_LOCATOR:
        (offset,) = struct.unpack_from("<Q", data, locator + 8)
        if offset + 40 > len(data) or data[offset : offset + 4] != b"PK\x06\x06":
            return None
        (count,) = struct.unpack_from("<Q", data, offset + 32)
    return int(count)

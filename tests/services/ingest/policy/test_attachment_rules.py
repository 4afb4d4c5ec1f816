"""The attachment policy's pieces as pure functions, table by table: which programs are
recognised by their first bytes, which names are refused, how a tenant's rules combine with
``[ingest.content]``, and which settings leave the message unwalked."""

from __future__ import annotations

import pytest

from services.ingest.config import ContentConfig
from services.ingest.policy import attachments
from shared.config import ByteSize
from shared.wire.records import ContentRules

MZ_AT_0x40 = b"MZ" + bytes(58) + (0x40).to_bytes(4, "little")


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (MZ_AT_0x40 + b"PE\x00\x00", "Windows (PE)"),
        (MZ_AT_0x40 + b"PE\x00\x01", ""),  # the signature is four bytes
        (MZ_AT_0x40 + b"NE\x00\x00", ""),  # a 16-bit NE program is not what MZ points at
        (b"MZ" + bytes(58) + (0x41).to_bytes(4, "little") + b"\x00PE\x00\x00", "Windows (PE)"),
        (b"\x7fELF\x01\x01\x01", "Linux (ELF)"),
        (b"\x7fELF\x02\x02\x01", "Linux (ELF)"),
        (b"\x7fELF\x01\x02", "Linux (ELF)"),
        (b"\x7fELF\x03\x01", ""),  # no such class
        (b"\x7fELF\x01\x00", ""),  # no such byte order
        (b"\x7fELF\x00\x01", ""),
        (b"\x7fELF", ""),
        (b"\xfe\xed\xfa\xce\x00", "macOS (Mach-O)"),
        (b"\xfe\xed\xfa\xcf\x00", "macOS (Mach-O)"),
        (b"\xce\xfa\xed\xfe\x00", "macOS (Mach-O)"),
        (b"\xcf\xfa\xed\xfe\x00", "macOS (Mach-O)"),
        (b"\xca\xfe\xba\xbe\x00", ""),  # fat Mach-O or a Java class: left out
        (b"%PDF-1.7\n", ""),
        (b"", ""),
    ],
)
def test_program_recognises_executables_by_their_first_bytes(head: bytes, kind: str) -> None:
    assert attachments.program(head) == kind


def test_pe_offset_reads_e_lfanew_only_from_a_whole_mz_header() -> None:
    """The MZ header is 64 bytes; e_lfanew is its last four (little-endian)."""
    header = b"MZ" + bytes(58) + (0x1234).to_bytes(4, "little")
    assert attachments.pe_offset(header) == 0x1234
    assert attachments.pe_offset(header + b"more") == 0x1234
    assert attachments.pe_offset(header[:-1]) == 0  # cut short: no offset to read
    assert attachments.pe_offset(b"ZM" + header[2:]) == 0
    # A 64-byte program whose PE header sits inside the MZ header (tiny PE files do this).
    tiny = b"MZ" + bytes(30) + b"PE\x00\x00" + bytes(24) + (32).to_bytes(4, "little")
    assert len(tiny) == 64 and attachments.program(tiny) == "Windows (PE)"


@pytest.mark.parametrize(
    ("name", "ext"),
    [
        ("report.pdf", "pdf"),
        ("archive.tar.GZ", "gz"),
        ("evil.exe. . .", "exe"),
        ("evil.exe\t", "exe"),
        ("C:\\temp\\run.BAT", "bat"),
        ("dir/sub/run.js", "js"),
        ("README", ""),
        (".js", "js"),  # only an extension: Windows still runs it as a script
        ("C:\\temp\\.EXE", "exe"),
        ("trailing.", ""),
        ("", ""),
    ],
)
def test_extension_is_the_last_one_windows_would_see(name: str, ext: str) -> None:
    assert attachments.extension(name) == ext


def test_name_problem_gives_the_reason_the_reply_quotes() -> None:
    blocked = frozenset({"exe", "js"})
    assert attachments.name_problem("report.pdf", blocked) == ""
    assert attachments.name_problem("run.exe", blocked) == "file type .exe is not accepted"
    assert attachments.name_problem("run.exe\x00.pdf", blocked) == "file type .exe is not accepted"
    assert attachments.name_problem("a.pdf\x00", blocked) == ""
    for override in ("\u202e", "\u202d"):
        assert attachments.name_problem(f"photo{override}gpj.pdf", blocked) == (
            "its name holds a text direction override (U+202E, U+202D) that disguises its type"
        )
    # The isolates and embeddings are used by right-to-left scripts: not refused.
    assert attachments.name_problem("\u2067\u05d3\u05d5\u05d7\u2069.pdf", blocked) == ""


def test_a_tenants_rules_go_over_the_global_ones() -> None:
    config = ContentConfig(
        blocked_extensions=["exe", "msi"],
        max_attachment_size=ByteSize(2048),
        max_attachments=5,
        max_archive_entries=7,
        inspect_archives=False,
        detect_executables=False,
    )
    same = attachments.rules(config, ContentRules())
    assert same == attachments.Rules(
        blocked=frozenset({"exe", "msi"}),
        allowed=frozenset(),
        inspect_archives=False,
        max_archive_entries=7,
        detect_executables=False,
        max_attachment_size=2048,
        max_attachments=5,
    )
    own = ContentRules(
        blocked_extensions=("xlsm",),
        allowed_extensions=("msi",),
        max_attachment_size=1024,
        max_attachments=1,
    )
    assert attachments.rules(config, own) == attachments.Rules(
        blocked=frozenset({"exe", "xlsm"}),
        allowed=frozenset({"msi"}),
        inspect_archives=False,
        max_archive_entries=7,
        detect_executables=False,
        max_attachment_size=1024,
        max_attachments=1,
    )
    on = attachments.rules(ContentConfig(), ContentRules())
    assert on.inspect_archives and on.detect_executables
    assert on.max_attachment_size == 0 and on.max_attachments == 0


def test_any_one_rule_makes_the_policy_active() -> None:
    off = attachments.Rules(
        blocked=frozenset(),
        allowed=frozenset({"pdf"}),  # allowing alone refuses nothing
        inspect_archives=False,
        max_archive_entries=10,
        detect_executables=False,
        max_attachment_size=0,
        max_attachments=0,
    )
    assert off.active is False
    for change in (
        {"blocked": frozenset({"exe"})},
        {"inspect_archives": True},
        {"detect_executables": True},
        {"max_attachment_size": 1},
        {"max_attachments": 1},
    ):
        rules = attachments.Rules(**{**off.__dict__, **change})  # type: ignore[arg-type]
        assert rules.active is True, change

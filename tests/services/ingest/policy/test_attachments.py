"""The attachment check as a pure function, on real MIME messages built by the standard
library's ``email`` package (and a few written by hand where a sender would misbehave)."""

from __future__ import annotations

import base64
import io
import struct
import zipfile
from email import policy
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest import parts
from services.ingest.config import ContentConfig, IngestConfig, ListenerConfig
from services.ingest.headers import parse
from services.ingest.policy import attachments, message
from services.ingest.policy.base import Decision, PolicyState, SessionInfo, Transaction
from shared.config import ByteSize
from shared.suppressions import SuppressionTable
from shared.wire.records import ContentRules, Tenant, TenantSettings
from shared.wire.topics import TENANTS

RELAY = ListenerConfig(name="relay", mode="relay")
#: A Windows program's first bytes: "MZ", e_lfanew at 0x3C pointing at "PE\0\0".
PE = b"MZ" + bytes(58) + (0x80).to_bytes(4, "little") + bytes(0x40) + b"PE\x00\x00" + bytes(64)
ELF = b"\x7fELF\x02\x01\x01" + bytes(57)
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 4


def build(*files: tuple[str, bytes, str], html: bool = True) -> bytes:
    """A message with a text (and HTML) body and ``files`` as attachments."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = "app@example.com"
    msg["To"] = "ann@dest.test"
    msg["Subject"] = "Your invoice"
    msg.set_content("Hello Ann,\n\nyour invoice is attached.\n")
    if html:
        msg.add_alternative("<p>Hello Ann,</p><p>your invoice is attached.</p>", subtype="html")
    for name, data, content_type in files:
        maintype, _, subtype = content_type.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


def state(content: ContentConfig | None = None, own: ContentRules | None = None) -> PolicyState:
    config = IngestConfig(listeners=[RELAY], content=content or ContentConfig())
    st = PolicyState.create(config, SuppressionTable())
    if own is not None:
        tenant = Tenant(id="acme", settings=TenantSettings(content=own), revision=1)
        st.tenants.apply(b"acme", TENANTS.encode(tenant))
    return st


def check(data: bytes, st: PolicyState | None = None) -> Decision | None:
    txn = Transaction(id="m1", mail_from="app@example.com", tenant="acme")
    session = SessionInfo(ip="192.0.2.9", port=1234, listener=RELAY)
    return attachments.attachments(st or state(), session, txn, data, parse(data))


def refused(data: bytes, st: PolicyState | None = None) -> str:
    decision = check(data, st)
    assert decision is not None, "accepted"
    return str(decision.reply)


def zipped(*names: str, encrypted: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, b"content of " + name.encode())
    data = buffer.getvalue()
    if encrypted:  # the "encrypted" flag (APPNOTE 4.4.4 bit 0) in every header
        data = data.replace(b"PK\x03\x04\x14\x00\x00", b"PK\x03\x04\x14\x00\x01")
        data = data.replace(b"PK\x01\x02\x14\x03\x14\x00\x00", b"PK\x01\x02\x14\x03\x14\x00\x01")
    return data


def test_plain_and_alternative_messages_have_nothing_to_judge() -> None:
    plain = b"From: a@example.com\r\nSubject: hi\r\n\r\nHello.\r\n"
    assert not parts.may_have_attachments(parse(plain))
    alternative = build()
    assert parts.may_have_attachments(parse(alternative))  # multipart: walked ...
    assert parts.find(alternative, parse(alternative)) == []  # ... and nothing found
    assert check(plain) is None and check(alternative) is None


def test_a_pdf_invoice_is_accepted_and_its_size_read() -> None:
    data = build(("invoice-2026-12.pdf", PDF, "application/pdf"))
    [part] = parts.find(data, parse(data))
    assert part.names == ("invoice-2026-12.pdf",) and part.attachment
    assert part.encoding == "base64" and part.size() == len(PDF) and part.head() == PDF
    assert check(data) is None


def test_the_head_of_a_long_part_is_decoded_whatever_its_line_length() -> None:
    long = bytes(range(256)) * 64
    data = build(("big.bin", long, "application/octet-stream"))
    [part] = parts.find(data, parse(data))
    assert part.head() == long[: parts.HEAD] and part.head(10_000) == long[:10_000]
    encoded = base64.b64encode(long)
    odd = b"\r\n".join(encoded[i : i + 70] for i in range(0, len(encoded), 70))  # not 4n
    data = data.replace(data[part.start : part.end], odd)
    [part] = parts.find(data, parse(data))
    assert part.head() == long[: parts.HEAD] and part.size() == len(long)


@pytest.mark.parametrize(
    ("name", "ext"),
    [
        ("setup.exe", "exe"),
        ("invoice.pdf.exe", "exe"),  # the last extension counts
        ("INVOICE.PDF.SCR", "scr"),  # any case
        ("evil.exe. . .", "exe"),  # Windows drops trailing dots and spaces
        ("C:\\Users\\me\\run.bat", "bat"),
        ("update.js", "js"),
        ("disk.iso", "iso"),
        (".vbs", "vbs"),  # a name that is only the extension: Windows runs it all the same
    ],
)
def test_blocked_types_are_refused_naming_the_file_and_rule(name: str, ext: str) -> None:
    reply = refused(build((name, b"payload", "application/octet-stream")))
    assert reply == f'550 5.7.1 Attachment "{name}" refused: file type .{ext} is not accepted'


def test_names_encoded_by_rfc_2231_and_rfc_2047_are_decoded() -> None:
    rfc2231 = build(("Rechnung März.pdf.exe", b"x", "application/pdf"))
    assert b"filename*=utf-8''" in rfc2231  # the stdlib wrote it encoded
    assert "Rechnung M\\xe4rz.pdf.exe" in refused(rfc2231)
    rfc2047 = build(("placeholder.pdf", b"x", "application/pdf")).replace(
        b'filename="placeholder.pdf"', b'filename="=?utf-8?B?cmVwb3J0LmV4ZQ==?="'
    )
    assert 'Attachment "report.exe" refused' in refused(rfc2047)


def test_a_name_in_either_header_counts() -> None:
    data = build(("report.pdf", b"x", "application/pdf"))
    only_type = data.replace(b"Content-Disposition: attachment", b"X-Was: attachment").replace(
        b"Content-Type: application/pdf", b'Content-Type: application/pdf; name="run.exe"'
    )
    assert "run.exe" in refused(only_type)
    both = data.replace(
        b"Content-Type: application/pdf", b'Content-Type: application/pdf; name="run.cmd"'
    )
    assert "run.cmd" in refused(both)  # the name that differs from the filename is judged too


def test_a_right_to_left_override_is_refused() -> None:
    reply = refused(build(("invoice\u202efdp.exe", b"x", "application/pdf")))
    assert reply.startswith('550 5.7.1 Attachment "invoice\\u202efdp.exe" refused: ')
    assert "direction override" in reply
    reply = refused(build(("photo\u202egpj.zip", zipped("a.txt"), "application/zip")))
    assert "direction override" in reply  # even when the real extension is harmless


def test_programs_under_a_harmless_name_are_refused() -> None:
    reply = refused(build(("report.pdf", PE, "application/pdf")))
    assert reply == (
        '550 5.7.1 Attachment "report.pdf" refused: it is a Windows (PE) program under a name '
        "that does not say so"
    )
    assert "Linux (ELF)" in refused(build(("notes.txt", ELF, "text/plain")))
    far = PE[:0x3C] + (0x5000).to_bytes(4, "little") + bytes(0x5000 - 0x40) + b"PE\x00\x00"
    assert "Windows (PE)" in refused(build(("far.pdf", far, "application/pdf")))
    # Text that starts with "MZ" is not a program: the PE header must be where MZ says.
    assert check(build(("mz.csv", b"MZ,Mozambique\r\n" * 20, "text/csv"))) is None


def test_a_program_without_a_name_is_refused() -> None:
    data = build(("x.pdf", PE, "application/octet-stream"))
    data = data.replace(b'Content-Disposition: attachment; filename="x.pdf"\r\n', b"")
    [part] = parts.find(data, parse(data))
    assert part.names == () and not part.attachment
    assert refused(data).startswith("550 5.7.1 Attachment without a name refused: it is a")


def test_program_detection_can_be_turned_off_or_allowed_per_tenant() -> None:
    data = build(("report.pdf", PE, "application/pdf"))
    assert check(data, state(ContentConfig(detect_executables=False))) is None
    installer = build(("setup.msi", PE, "application/octet-stream"))
    assert "file type .msi" in refused(installer)
    assert check(installer, state(own=ContentRules(allowed_extensions=("msi",)))) is None


def test_names_inside_a_zip_are_judged_without_decompressing() -> None:
    assert check(build(("photos.zip", zipped("a.jpg", "b/c.pdf"), "application/zip"))) is None
    reply = refused(build(("docs.zip", zipped("readme.txt", "bin/Setup.EXE"), "application/zip")))
    assert reply == (
        '550 5.7.1 Attachment "docs.zip" refused: it holds "bin/Setup.EXE" '
        "(file type .exe is not accepted)"
    )
    secret = build(("secret.zip", zipped("run.vbs", encrypted=True), "application/zip"))
    with zipfile.ZipFile(io.BytesIO(zipped("run.vbs", encrypted=True))) as archive:
        assert archive.infolist()[0].flag_bits & 1  # really marked as encrypted
    assert "run.vbs" in refused(secret)
    assert check(secret, state(ContentConfig(inspect_archives=False))) is None


def test_unreadable_and_oversized_zips_are_refused() -> None:
    broken = build(("broken.zip", b"PK\x03\x04 not really a zip", "application/zip"))
    assert "not a zip file that can be read" in refused(broken)
    many = build(("many.zip", zipped(*(f"f{i}.txt" for i in range(30))), "application/zip"))
    reply = refused(many, state(ContentConfig(max_archive_entries=20)))
    assert "archive lists more than 20 files to inspect" in reply
    assert check(many, state(ContentConfig(max_archive_entries=30))) is None


def test_size_and_count_limits() -> None:
    data = build(("a.pdf", PDF, "application/pdf"), ("b.pdf", PDF[:100], "application/pdf"))
    small = state(ContentConfig(max_attachment_size=ByteSize(1024)))
    decision = check(data, small)
    assert decision is not None and decision.check == "attachment_size"
    assert str(decision.reply) == (
        f'552 5.3.4 Attachment "a.pdf" is {len(PDF)} bytes, more than the 1024 allowed'
    )
    assert check(data, state(ContentConfig(max_attachment_size=ByteSize(len(PDF))))) is None
    decision = check(data, state(ContentConfig(max_attachments=1)))
    assert decision is not None and decision.check == "attachment_count"
    assert str(decision.reply) == "550 5.7.1 Too many attachments (2, at most 1)"


def test_a_tenant_adds_relaxes_and_overrides_rules() -> None:
    macro = build(("budget.xlsm", b"PK", "application/octet-stream"))
    assert check(macro) is None
    stricter = state(own=ContentRules(blocked_extensions=("xlsm",)))
    assert "file type .xlsm" in refused(macro, stricter)
    allowed = state(own=ContentRules(allowed_extensions=("exe",), max_attachment_size=1024))
    assert check(build(("tool.exe", b"x", "application/octet-stream")), allowed) is None
    big = build(("a.pdf", PDF, "application/pdf"))
    decision = check(big, allowed)
    assert decision is not None and decision.check == "attachment_size"


def test_a_forwarded_message_is_opened() -> None:
    inner = EmailMessage(policy=policy.SMTP)
    inner["From"] = "x@example.com"
    inner.set_content("see attached")
    inner.add_attachment(b"x", maintype="application", subtype="octet-stream", filename="a.scr")
    outer = EmailMessage(policy=policy.SMTP)
    outer["From"] = "app@example.com"
    outer.set_content("forwarding")
    outer.add_attachment(inner)
    assert '"a.scr" refused' in refused(outer.as_bytes())


def test_a_delimiter_line_with_text_after_it_still_ends_a_part() -> None:
    data = build(("a.pdf", b"x", "application/pdf"))
    boundary = data.split(b'boundary="', 1)[1].split(b'"', 1)[0]
    hidden = (
        b"--" + boundary + b'junk\r\nContent-Type: application/octet-stream; name="run.exe"\r\n'
        b"\r\nx\r\n"
    )
    data = data.replace(b"--" + boundary + b"--", hidden + b"--" + boundary + b"--")
    assert "run.exe" in refused(data)


def nested(depth: int) -> bytes:
    head = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d."\r\n\r\n--b%d.\r\n' % (i, i)
        for i in range(depth)
    )
    return b"From: a@example.com\r\n" + head + b"Content-Type: text/plain\r\n\r\nhi\r\n"


def test_malformed_structure_is_judged_as_well_as_it_can_be() -> None:
    data = build(("a.pdf", b"x", "application/pdf"))
    boundary = data.split(b'boundary="', 1)[1].split(b'"', 1)[0]
    empty = data.replace(b'boundary="' + boundary + b'"', b'boundary=""')
    assert check(empty) is None  # no boundary: one text part, nothing to judge
    no_close = data.replace(b"--" + boundary + b"--", b"").replace(b"a.pdf", b"a.vbs")
    assert '"a.vbs" refused' in refused(no_close)  # the last part runs to the end
    noise = data.replace(b"Content-Type: application/pdf", b"Content-Type: application")
    assert check(noise) is None  # a malformed type is text/plain (RFC 2045 5.2)


#: A state shared by the property test (building one per example would dominate its time).
SHARED = state()
SAMPLE = build(
    ("a.pdf", PDF[:300], "application/pdf"), ("d.zip", zipped("a.txt"), "application/zip")
)
PIECES = [b'"', b";", b"=", b"*", b"=?utf-8?q?", b"?=", b"\r\n", b"\n", b"--", b"\x00", b"\xff"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(SAMPLE)), st.sampled_from(PIECES), st.integers(0, 8)),
        max_size=6,
    )
)
def test_a_mangled_message_gets_a_verdict_never_an_error(
    edits: list[tuple[int, bytes, int]],
) -> None:
    data = bytearray(SAMPLE)
    for at, piece, cut in edits:
        data[at : at + cut] = piece  # replace ``cut`` bytes (or insert) at ``at``
    decision = check(bytes(data), SHARED)  # raises on a bug: the session would answer 451
    assert decision is None or decision.reply.code >= 500


def test_nesting_past_the_limit_is_refused() -> None:
    assert check(nested(parts.MAX_DEPTH)) is None
    decision = check(nested(parts.MAX_DEPTH + 1))
    assert decision is not None and decision.check == "mime_structure"
    assert str(decision.reply) == "550 5.6.0 MIME structure nested too deeply"


def test_the_message_checks_run_it_last() -> None:
    assert message.CHECKS[-1] is attachments.attachments


def zip64(*names: str) -> bytes:
    """:func:`zipped` with a zip64 end record, as a zip of more than 65535 files has: the
    end record's counts are 0xFFFF and the real ones are in the zip64 record (APPNOTE 4.3.14)."""
    plain = zipped(*names)
    at = plain.rfind(b"PK\x05\x06")
    _, _, _, _, count, size, offset, _ = struct.unpack("<4s4H2LH", plain[at : at + 22])
    record = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, size, offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, at, 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, size, offset, 0)
    return plain[:at] + record + locator + end


def test_a_zip64_archive_is_counted_by_its_zip64_record() -> None:
    data = zip64("a.txt", "b.txt", "c.txt")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert len(archive.infolist()) == 3  # a zip as zipfile reads it
    three = state(ContentConfig(max_archive_entries=3))
    assert check(build(("d.zip", data, "application/zip")), three) is None
    two = state(ContentConfig(max_archive_entries=2))
    assert "archive lists more than 2 files" in refused(
        build(("d.zip", data, "application/zip")), two
    )
    assert "bin/run.exe" in refused(
        build(("d.zip", zip64("a.txt", "bin/run.exe"), "application/zip"))
    )
    at = data.rfind(b"PK\x06\x07")
    for offset in (1, len(data) - 30, 1 << 40):  # a locator pointing at no zip64 record
        bad = data[: at + 8] + struct.pack("<Q", offset) + data[at + 16 :]
        reply = refused(build(("d.zip", bad, "application/zip")), three)
        assert reply.endswith("refused: it is not a zip file that can be read")


def test_the_zip_end_record_is_looked_for_only_where_a_comment_allows() -> None:
    """The end record is 22 bytes plus a comment of at most 65535: one further from the end
    is not a zip's end (and a zip whose comment fills the whole 65535 bytes is read)."""
    rules = attachments.rules(ContentConfig(), ContentRules())
    base = zipped("a.txt")
    full = base[:-2] + struct.pack("<H", 65535) + b"c" * 65535
    assert attachments.archive_problem(full, rules) == ""
    one_more = full + b"c"
    assert attachments.archive_problem(one_more, rules) == "it is not a zip file that can be read"
    for cut in (1, 12):  # an end record cut short, even before its entry count
        assert attachments.archive_problem(base[:-cut], rules) == (
            "it is not a zip file that can be read"
        )


def test_a_zip_with_a_damaged_directory_is_refused() -> None:
    damaged = zipped("a.txt").replace(b"PK\x01\x02", b"PK\x01\x09")
    reply = refused(build(("d.zip", damaged, "application/zip")))
    assert reply == '550 5.7.1 Attachment "d.zip" refused: it is not a zip file that can be read'


def test_a_long_name_inside_a_zip_is_shortened_in_the_reply() -> None:
    inner = "folder/" + "x" * 70 + ".exe"
    reply = refused(build(("d.zip", zipped(inner), "application/zip")))
    shown = inner[:57] + "..."
    assert reply == (
        f'550 5.7.1 Attachment "d.zip" refused: it holds "{shown}" (file type .exe is not accepted)'
    )


def test_programs_whose_pe_header_is_near_the_end_of_the_head_read() -> None:
    """Where the PE header is relative to the first 4096 bytes read does not matter: inside
    the 64-byte MZ header, straddling the end of what was read, or far past it."""
    tiny = b"MZ" + bytes(30) + b"PE\x00\x00" + bytes(24) + (32).to_bytes(4, "little")
    for pe in (
        tiny + bytes(100),
        PE[:0x3C]
        + (parts.HEAD - 2).to_bytes(4, "little")
        + bytes(parts.HEAD - 0x42)
        + b"PE\x00\x00",
    ):
        assert "Windows (PE)" in refused(build(("a.pdf", pe, "application/pdf")))


def test_every_rule_off_leaves_the_message_unwalked() -> None:
    off = ContentConfig(blocked_extensions=[], inspect_archives=False, detect_executables=False)
    assert check(nested(parts.MAX_DEPTH + 1), state(off)) is None
    assert check(build(("run.exe", PE, "application/octet-stream")), state(off)) is None
    counted = ContentConfig(
        blocked_extensions=[], inspect_archives=False, detect_executables=False, max_attachments=1
    )
    decision = check(nested(parts.MAX_DEPTH + 1), state(counted))
    assert decision is not None and decision.check == "mime_structure"


def test_as_many_attachments_as_allowed_pass() -> None:
    data = build(("a.pdf", PDF, "application/pdf"), ("b.pdf", PDF[:100], "application/pdf"))
    assert check(data, state(ContentConfig(max_attachments=2))) is None


def test_an_empty_zip_is_accepted() -> None:
    """An empty zip is its end record alone, at the very start of the file."""
    empty = zipped()
    assert len(empty) == 22 and empty.startswith(b"PK\x05\x06")
    assert check(build(("nothing.zip", empty, "application/zip"))) is None

"""RFC 3464 delivery status notifications: per-recipient Action, Status, Diagnostic-Code.

Owns finding the ``message/delivery-status`` part (RFC 3464 2.1; also the common malformed
variants: the fields in a text/plain second part of a ``multipart/report``) and reading its
field blocks. It does not guess from free text (``textbounce.py``) or classify.
"""

from __future__ import annotations

import binascii
import quopri
import re
from email.message import Message

from services.bouncer.report import (
    STATUS_RE,
    RecipientStatus,
    Report,
    ReportKind,
    clean_address,
    decode_part,
    find_reply_code,
    find_status,
    is_mailbox_path,
)

_SURROGATE = re.compile("[\udc80-\udcff]")
_FIELD_RE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)\s*:\s*(.*)$")
# RFC 3464 2.3.1/2.3.2: Final-Recipient is the address the reporting MTA tried, the one the
# status is about; Original-Recipient is the address the sender gave (ours, when we passed
# ORCPT), which forwarding or aliasing may have rewritten on the way. The recipient is the
# first of these that holds an address; Original-Recipient is also kept on its own.
_RECIPIENT_FIELDS = ("final-recipient", "x-actual-recipient", "original-recipient")


def parse_dsn(msg: Message) -> Report | None:
    """The DSN's per-recipient statuses, or ``None`` when ``msg`` holds no usable DSN."""
    blocks = _status_blocks(msg)
    if not blocks:
        return None
    per_message = blocks[0] if not _is_recipient_block(blocks[0]) else {}
    reporting = clean_mta(per_message.get("reporting-mta", ""))
    recipients = tuple(r for r in (_recipient(b) for b in blocks if _is_recipient_block(b)) if r)
    if not recipients:
        return None
    return Report(
        kind=ReportKind.DSN,
        recipients=recipients,
        reporting_mta=reporting,
        original_message_id=original_message_id(msg),
        parser="dsn",
    )


def clean_mta(value: str) -> str:
    """``dns; mx.example.com (1.2.3.4)`` -> ``mx.example.com`` (RFC 3464 2.2.2 mta-name-type)."""
    _, sep, rest = value.partition(";")
    name = (rest if sep else value).strip().split()
    return name[0].strip("[]<>").rstrip(".").lower() if name else ""


_MESSAGE_ID_LINE = re.compile(r"^Message-ID:\s*(\S+)", re.I | re.M)


def original_message_id(msg: Message) -> str:
    """The Message-ID of the returned original (``message/rfc822`` or its headers part)."""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822" and part.is_multipart():
            inner = part.get_payload(0)
            if isinstance(inner, Message) and inner.get("Message-ID"):
                return str(inner["Message-ID"]).strip()
        elif ctype == "text/rfc822-headers":
            match = _MESSAGE_ID_LINE.search(decode_part(part))
            if match:
                return match.group(1)
    return ""


def _status_blocks(msg: Message) -> list[dict[str, str]]:
    for part in msg.walk():
        if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
            return _blocks_of(part)
    # Malformed but common: report-type=delivery-status with the fields in a text part.
    if msg.get_content_type() == "multipart/report":
        for part in msg.walk():
            if part.get_content_type() == "text/plain":
                blocks = parse_field_blocks(decode_part(part), _RECIPIENT_FIELDS)
                if any(_is_recipient_block(b) for b in blocks):
                    return blocks
    return []


def _blocks_of(part: Message) -> list[dict[str, str]]:
    payload = part.get_payload()
    if isinstance(payload, list):
        # The email package parses message/delivery-status into one Message per
        # blank-line block; rebuild the text so that one reader splits the blocks (it also
        # splits blocks that have no blank line between them) and so that a transfer-encoded
        # part (base64, seen from Lotus and some gateways) is decoded, not read as headers.
        text = _rebuilt_text(payload)
        blocks = parse_field_blocks(_transfer_decoded(part, text), _RECIPIENT_FIELDS)
        if not any(_is_recipient_block(b) for b in blocks):
            # A transfer encoding declared but not applied: base64 decoding skips what is
            # not base64 and leaves nothing readable, while the fields stand there in clear.
            blocks = parse_field_blocks(text, _RECIPIENT_FIELDS)
        return blocks
    return parse_field_blocks(decode_part(part), _RECIPIENT_FIELDS)


def _rebuilt_text(blocks: list[Message | str]) -> str:
    chunks: list[str] = []
    for block in blocks:
        if not isinstance(block, Message):
            continue
        # raw_items: the values as written; items() would turn their non-ASCII bytes into
        # U+FFFD before _utf8 can read them.
        lines = [f"{name}: {value}" for name, value in block.raw_items()]
        body = block.get_payload()
        if isinstance(body, str) and "\ufffd" in body:
            # get_payload() read the non-ASCII bytes as ASCII (U+FFFD); decode=True gives
            # them back as bytes (the block itself has no transfer encoding).
            raw = block.get_payload(decode=True)
            body = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else body
        if isinstance(body, str) and body.strip():
            lines.append(body)
        chunks.append("\n".join(lines))
    return _utf8("\n\n".join(chunks))


def _utf8(text: str) -> str:
    """``text`` with the non-ASCII bytes the parser kept as surrogates read as UTF-8.

    RFC 6533 3: a message/global-delivery-status part is UTF-8 (a raw UTF-8 address after
    ``utf-8;``); read as it was parsed, "jörg@example" came out as "j\ufffd\ufffdrg@example".
    """
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def _transfer_decoded(part: Message, text: str) -> str:
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    try:
        if encoding == "base64":
            data = binascii.a2b_base64("".join(text.split()))
        elif encoding == "quoted-printable":
            data = quopri.decodestring(text.encode("ascii", errors="replace"))
        else:
            return text
    except binascii.Error:
        return text
    return data.decode(part.get_content_charset() or "utf-8", errors="replace")


def parse_field_blocks(text: str, recipient_fields: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """RFC 3464 2.1: groups of ``Name: value`` fields separated by blank lines.

    With ``recipient_fields`` (the DSN's per-recipient address fields), such a field also
    starts a new block when the current one already describes a recipient or is the
    per-message block: some MTAs write the blocks with no blank line between them, and
    reading them as one block loses every recipient but one.
    """
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, ""
        elif line[0] in " \t" and last:
            current[last] += " " + line.strip()  # RFC 5322 folding
        else:
            match = _FIELD_RE.match(line)
            if match:
                last = match.group(1).lower()
                if last in recipient_fields and _starts_block(current, last, recipient_fields):
                    blocks.append(current)
                    current = {}
                current.setdefault(last, match.group(2).strip())
    if current:
        blocks.append(current)
    return blocks


def _starts_block(current: dict[str, str], name: str, recipient_fields: tuple[str, ...]) -> bool:
    if not current:
        return False
    if name in current or "reporting-mta" in current or "arrival-date" in current:
        return True
    described = any(f in current for f in recipient_fields)
    return described and ("action" in current or "status" in current)


def _is_recipient_block(block: dict[str, str]) -> bool:
    return any(f in block for f in _RECIPIENT_FIELDS) and ("action" in block or "status" in block)


def _recipient(block: dict[str, str]) -> RecipientStatus | None:
    address = ""
    for name in _RECIPIENT_FIELDS:
        candidate = clean_address(block.get(name, ""))
        if "@" in candidate:
            address = candidate
            break
    if not address:
        address = clean_address(block.get("final-recipient", ""))
    if not address or is_mailbox_path(address):
        # Local delivery to a file or pipe names the path ("/var/mail/john"), which is
        # nobody's address; suppressing it would be wrong, and the text part may name one.
        return None
    diagnostic = strip_diagnostic_type(block.get("diagnostic-code", ""))
    status = find_status(block.get("status", "")) or _squeezed_status(block.get("status", ""))
    # Without a Diagnostic-Code, the words some MTAs write in the Status field are the only
    # diagnostic: "5.0.0 (recipient reached disk quota)" (Sun/iPlanet Messaging Server),
    # "553 Exceeded maximum inbound message size" (a reply where the status belongs).
    diagnostic = diagnostic or _status_words(block.get("status", ""))
    status = status or find_status(diagnostic)
    return RecipientStatus(
        recipient=address,
        action=_action(block.get("action", "")),
        status=status,
        smtp_code=find_reply_code(diagnostic),
        diagnostic=diagnostic,
        remote_mta=clean_mta(block.get("remote-mta", "")),
        original_recipient=clean_address(block.get("original-recipient", "")),
    )


def _action(value: str) -> str:
    # RFC 3464 2.3.3 action values; some MTAs write "failure" or "delay".
    word = value.strip().lower().split(" ")[0] if value.strip() else ""
    for action in ("failed", "delayed", "delivered", "relayed", "expanded"):
        if word[:4] == action[:4]:
            return action
    return word


def _status_words(value: str) -> str:
    """What a Status field says beside its code (RFC 3464 2.3.4 allows a comment):
    ``5.0.0 (disk quota)`` -> ``disk quota``; ``553 Too big`` -> ``553 Too big``; else ""."""
    value = value.strip()
    code = STATUS_RE.match(value)
    if code is None:
        return value if any(char.isalpha() for char in value) else ""
    return value[code.end() :].strip().removeprefix("(").removesuffix(")").strip()


def _squeezed_status(value: str) -> str:
    # Some MTAs write "550" or "5.1.10" oddly; a bare three-digit class.subject.detail
    # like "511" is read as 5.1.1.
    match = re.fullmatch(r"\s*([245])(\d)(\d)\s*", value)
    return f"{match.group(1)}.{match.group(2)}.{match.group(3)}" if match else ""


def strip_diagnostic_type(value: str) -> str:
    """A Diagnostic-Code without its type (RFC 3464 2.3.6): ``smtp; 550 ...`` -> ``550 ...``."""
    kind, sep, rest = value.partition(";")
    if sep and kind.strip().lower() in ("smtp", "x-unix", "x-postfix", "x-local", "unix"):
        return rest.strip()
    return value.strip()

"""A JSON message (``POST /v1/messages``) as RFC 5322 bytes, built with the standard
library's ``email`` package (``EmailMessage`` and its ``SMTP`` policy).

The package does the encodings: header fields are folded at 78 characters (RFC 5322 2.1.1)
and non-ASCII text in them becomes RFC 2047 encoded words (display names, Subject);
attachment names become RFC 2231 parameters (``filename*=utf-8''...``, continued when
long); bodies are 7-bit clean (``cte_type="7bit"``): non-ASCII or long-lined text is
quoted-printable or base64, whichever is shorter, attachments base64, so every line is
short and the message needs no 8BITMIME on the way. Line ends are CRLF.

Structure: ``text`` and ``html`` are a multipart/alternative (plain first: RFC 2046 5.1.4,
the last part is the preferred one); inline attachments with a ``content_id`` join the HTML
in a multipart/related (RFC 2387); other attachments make the whole a multipart/mixed.
A message needing SMTPUTF8 (a non-ASCII address) is generated with UTF-8 header fields
(RFC 6532) instead of encoded words.

Date and Message-ID are not set here: ingest adds them for every message, whichever way it
came (``headers.complete``). Owns building only; every value has been checked by
``compose.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from email import policy as policies
from email.headerregistry import Address
from email.message import EmailMessage

from services.ingest.api.addresses import Mailbox
from services.ingest.api.types import Attachment

#: 7-bit bodies: non-ASCII text is encoded rather than sent as 8-bit (RFC 6152 not needed).
_ASCII = policies.SMTP.clone(cte_type="7bit")
_UTF8 = policies.SMTPUTF8.clone(cte_type="7bit")


def address(mailbox: Mailbox) -> Address:
    """``mailbox`` as the ``email`` package's header address."""
    local, _, domain = mailbox.address.rpartition("@")
    if local.startswith('"') and local.endswith('"'):
        local = local[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return Address(display_name=mailbox.name, username=local, domain=domain)


def build(
    *,
    sender: Mailbox,
    to: Sequence[Mailbox],
    cc: Sequence[Mailbox],
    reply_to: Sequence[Mailbox],
    subject: str,
    text: str | None,
    html: str | None,
    attachments: Sequence[Attachment],
    headers: dict[str, str],
    utf8: bool,
) -> bytes:
    """The message's bytes (see the module docstring). Bcc recipients are never named."""
    msg = EmailMessage(policy=_UTF8 if utf8 else _ASCII)
    msg["From"] = address(sender)
    if to:
        msg["To"] = [address(m) for m in to]
    if cc:
        msg["Cc"] = [address(m) for m in cc]
    if reply_to:
        msg["Reply-To"] = [address(m) for m in reply_to]
    if subject:
        msg["Subject"] = subject
    for name, value in headers.items():
        msg[name] = value
    _body(msg, text, html, [a for a in attachments if _inline(a)])
    for attachment in attachments:
        if not _inline(attachment):
            _attach(msg, attachment)
    for part in msg.walk():
        if part is not msg:
            del part["MIME-Version"]  # the package repeats it in parts it creates
    return msg.as_bytes()


def _inline(attachment: Attachment) -> bool:
    return attachment.disposition == "inline" and bool(attachment.content_id)


def _body(
    msg: EmailMessage, text: str | None, html: str | None, related: Sequence[Attachment]
) -> None:
    if text is not None:
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    if not related:
        return
    html_part: object = msg
    if msg.is_multipart():  # text and html: the html is the alternative's last part
        parts = msg.get_payload()
        assert isinstance(parts, list)
        html_part = parts[-1]
    assert isinstance(html_part, EmailMessage)
    for attachment in related:
        maintype, _, subtype = attachment.content_type.partition("/")
        html_part.add_related(
            attachment.content,
            maintype,
            subtype,
            cid=f"<{attachment.content_id}>",
            filename=attachment.filename,
            disposition="inline",
        )


def _attach(msg: EmailMessage, attachment: Attachment) -> None:
    maintype, _, subtype = attachment.content_type.partition("/")
    msg.add_attachment(
        attachment.content,
        maintype,
        subtype,
        filename=attachment.filename,
        disposition=attachment.disposition,
        cid=f"<{attachment.content_id}>" if attachment.content_id else None,
    )

"""CHUNKING (RFC 3030): the BDAT command, which aiosmtpd lacks, in an SMTP subclass.

``BDAT <size> [LAST]`` is followed by exactly ``size`` octets, with no dot-stuffing and no
end-of-data line, so there is nothing to smuggle through a line ending here; the message
still passes the same checks as one sent with DATA (``handle_DATA``), because the deliverer
will later send it with DATA. Outlook and Exchange use BDAT when it is advertised.

This module owns the chunk reading and the RFC 3030 state rules: chunk data is always read
(even when the command is refused) so the session stays in step; DATA and BDAT do not mix
in one transaction; the chunk that takes a message over the size limit is discarded while
reading and refused with ``552 5.3.4``, and the transaction is reset (later chunks of it get
503, their data still consumed).
"""

from __future__ import annotations

import re

from aiosmtpd.smtp import MISSING, SMTP, syntax

from services.ingest import replies
from services.ingest.replies import Reply

_BDAT = re.compile(r"^(\d{1,12})(?:\s+(LAST))?$", re.IGNORECASE)
_PIECE = 64 * 1024

NEED_RCPT = Reply(code=503, enhanced="5.5.1", text="Need RCPT command")
NEED_EHLO = Reply(code=503, enhanced="5.5.1", text="Send EHLO first")
MIXED = Reply(code=503, enhanced="5.5.1", text="BDAT and DATA cannot be mixed in one message")
BDAT_SYNTAX = Reply(code=501, enhanced="5.5.4", text="Syntax: BDAT <size> [LAST]")


def chunk_ok(size: int) -> Reply:
    """The reply to a non-final chunk."""
    return Reply(code=250, enhanced="2.0.0", text=f"{size} octets received")


class ChunkingSMTP(SMTP):
    """aiosmtpd's SMTP plus BDAT; subclasses set ``data_timeout`` and may override
    :meth:`after_message`."""

    data_timeout: float = 600.0
    _chunks: bytearray | None = None

    def _set_post_data_state(self) -> None:
        super()._set_post_data_state()  # type: ignore[no-untyped-call]
        self._chunks = None

    async def after_message(self) -> None:
        """Called after the final reply to DATA or BDAT LAST."""

    async def smtp_DATA(self, arg: str) -> None:
        """DATA, refused inside a BDAT transaction (RFC 3030 2)."""
        if self._chunks is not None:
            await self.push(str(MIXED))
            return
        await super().smtp_DATA(arg)
        await self.after_message()

    @syntax("BDAT <size> [LAST]")
    async def smtp_BDAT(self, arg: str | None) -> None:
        """One chunk of the message; the LAST chunk completes it like DATA's end."""
        match = _BDAT.match(arg.strip()) if arg else None
        if match is None:
            await self.push(str(BDAT_SYNTAX))
            return
        size, last = int(match.group(1)), bool(match.group(2))
        self._reset_timeout(self.data_timeout)
        chunk = await self._read_chunk(size)
        self._reset_timeout()
        refusal = self._bdat_refusal()
        if refusal is not None:
            await self.push(str(refusal))
            return
        if chunk is None:
            await self._finish_too_big()
            return
        if self._chunks is None:
            self._chunks = bytearray()
        self._chunks += chunk
        if not last:
            await self.push(str(chunk_ok(size)))
            return
        await self._finish()

    async def _read_chunk(self, size: int) -> bytes | None:
        """The chunk's bytes, or ``None`` when the message would exceed the size limit
        (the bytes are then read and discarded, to stay in step with the client)."""
        held = len(self._chunks) if self._chunks is not None else 0
        limit = self.data_size_limit
        if not limit or held + size <= limit:
            return await self._reader.readexactly(size)
        remaining = size
        while remaining:
            remaining -= len(await self._reader.readexactly(min(remaining, _PIECE)))
        return None

    def _bdat_refusal(self) -> Reply | None:
        assert self.session is not None and self.envelope is not None
        if not self.session.host_name:
            return NEED_EHLO
        if self._auth_required and not self.session.authenticated:
            return replies.AUTH_REQUIRED
        if not self.envelope.rcpt_tos:
            return NEED_RCPT
        return None

    async def _finish_too_big(self) -> None:
        self.on_too_big()
        self._set_post_data_state()
        await self.push(str(replies.TOO_BIG))
        await self.after_message()

    def on_too_big(self) -> None:
        """A message went over the size limit (subclasses report it)."""

    async def _finish(self) -> None:
        assert self.envelope is not None and self._chunks is not None
        content = bytes(self._chunks)
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)
        await self.after_message()

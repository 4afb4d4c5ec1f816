"""The message bytes of a transaction: the DATA block and CHUNKING (RFC 3030) BDAT, in an SMTP
subclass, streamed into a :class:`~services.ingest.budget.BodyBuffer`.

aiosmtpd has no BDAT, and its DATA reader keeps every line as its own ``bytearray`` and joins
them at the end (about three times the message in memory, issue 11 item 6), so both are
read here: DATA line by line as aiosmtpd does (ending only on ``<CRLF>.<CRLF>``, lines past
1000 octets refused, RFC 5321 4.5.3.1.6), BDAT in pieces of at most 64 KiB; each piece goes
into one buffer counted against the process-wide budget, and a message is never copied
more than once on its way to the hand-off.

``BDAT <size> [LAST]`` is followed by exactly ``size`` octets, with no dot-stuffing and no
end-of-data line, so there is nothing to smuggle through a line ending here; the message
still passes the same checks as one sent with DATA (``handle_DATA``), because the deliverer
will later send it with DATA. Outlook and Exchange use BDAT when it is advertised.

RFC 3030 rules kept here: chunk data is always consumed, so the session stays in step, but
only stored once the chunk is known to be wanted: a BDAT refused for its state (no EHLO,
AUTH or RCPT), for the size limit (``552 5.3.4``) or for the memory budget (``452 4.3.1``) is
decided before its first octet is read, and its octets are read and dropped in pieces
(issue 11 item 4: 40 unauthenticated 25 MiB chunks were buffered whole before the 530). DATA
and BDAT do not mix in one transaction; a refused chunk resets the transaction (later chunks
of it get 503, their data still consumed).
"""

from __future__ import annotations

import asyncio
import re

from aiosmtpd.smtp import MISSING, SMTP, syntax

from services.ingest import replies
from services.ingest.budget import NO_ROOM, BodyBudget, BodyBuffer
from services.ingest.replies import Reply

_BDAT = re.compile(r"^(\d{1,12})(?:\s+(LAST))?$", re.IGNORECASE)
_PIECE = 64 * 1024

NEED_RCPT = Reply(code=503, enhanced="5.5.1", text="Need RCPT command")
NEED_EHLO = Reply(code=503, enhanced="5.5.1", text="Send EHLO first")
MIXED = Reply(code=503, enhanced="5.5.1", text="BDAT and DATA cannot be mixed in one message")
BDAT_SYNTAX = Reply(code=501, enhanced="5.5.4", text="Syntax: BDAT <size> [LAST]")
LINE_TOO_LONG = Reply(code=500, enhanced="5.5.2", text="Line too long")
_START_DATA = "354 End data with <CR><LF>.<CR><LF>"


def chunk_ok(size: int) -> Reply:
    """The reply to a non-final chunk."""
    return Reply(code=250, enhanced="2.0.0", text=f"{size} octets received")


class ChunkingSMTP(SMTP):
    """aiosmtpd's SMTP with our DATA reader and BDAT; subclasses set ``budget`` and
    ``data_timeout`` and may override :meth:`after_message` and the ``on_*`` reports."""

    data_timeout: float = 600.0
    budget: BodyBudget
    #: The BDAT transaction's bytes so far (``None``: no BDAT chunk accepted yet).
    _body: BodyBuffer | None = None

    def _set_post_data_state(self) -> None:
        super()._set_post_data_state()  # type: ignore[no-untyped-call]
        self._drop_body()

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.release()
            self._body = None

    def connection_lost(self, exc: Exception | None) -> None:
        """A client gone mid-message gives its bytes back to the budget."""
        super().connection_lost(exc)
        self._drop_body()

    async def smtp_RSET(self, arg: str) -> None:
        """RSET also abandons a BDAT transaction's chunks."""
        self._drop_body()
        await super().smtp_RSET(arg)

    async def after_message(self) -> None:
        """Called after the final reply to DATA or BDAT LAST."""

    def on_too_big(self) -> None:
        """A message went over the size limit (subclasses report it)."""

    def on_no_room(self) -> None:
        """A message was refused for the memory budget (subclasses report it)."""

    # -- DATA (RFC 5321 4.1.1.4) -----------------------------------------------------------

    async def smtp_DATA(self, arg: str) -> None:
        """DATA, refused inside a BDAT transaction (RFC 3030 2)."""
        if self._body is not None:
            await self.push(str(MIXED))
            return
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push(_START_DATA)
        body = BodyBuffer(self.budget)
        try:
            refusal = await self._read_data(body)
            if refusal is None:
                await self._deliver(body)
            else:
                body.release()
                self._report(refusal)
                self._set_post_data_state()
                await self.push(str(refusal))
        finally:
            body.release()
        await self.after_message()

    async def _read_data(self, body: BodyBuffer) -> Reply | None:
        """Read the DATA block into ``body``, undoing dot-stuffing (RFC 5321 4.5.2); the
        refusal, if any (the rest of the block is then read and dropped)."""
        limit = self.data_size_limit
        size = 0
        refusal: Reply | None = None
        too_long = False
        in_line = False  # the last piece read was part of a line longer than the limit
        while True:
            try:
                line = await self._reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as exc:
                # Longer than the stream limit (1001 octets): drop it, refuse at the end.
                line = await self._reader.read(exc.consumed)
                too_long, in_line = True, True
                continue
            except asyncio.CancelledError:
                self._writer.close()  # the connection was reset during DATA
                raise
            if in_line:
                in_line = False
                continue  # the end of an over-long line
            if line == b".\r\n":
                break
            size += len(line)
            if refusal is not None or too_long:
                continue
            if limit and size > limit:
                refusal = replies.TOO_BIG
                body.release()
            elif not body.add(line[1:] if line[:1] == b"." else line):
                refusal = NO_ROOM
        return LINE_TOO_LONG if too_long and refusal is None else refusal

    # -- BDAT (RFC 3030) --------------------------------------------------------------------

    @syntax("BDAT <size> [LAST]")
    async def smtp_BDAT(self, arg: str | None) -> None:
        """One chunk of the message; the LAST chunk completes it like DATA's end."""
        match = _BDAT.match(arg.strip()) if arg else None
        if match is None:
            await self.push(str(BDAT_SYNTAX))
            return
        size, last = int(match.group(1)), bool(match.group(2))
        refusal = self._bdat_refusal(size)
        self._reset_timeout(self.data_timeout)
        if refusal is None:
            assert self._body is not None
            await self._read_chunk(self._body, size)
        else:
            await self._discard(size)
        self._reset_timeout()
        if refusal is not None:
            await self._refuse_chunk(refusal)
        elif last:
            body, self._body = self._body, None
            assert body is not None
            try:
                await self._deliver(body)
            finally:
                body.release()
            await self.after_message()
        else:
            await self.push(str(chunk_ok(size)))

    def _bdat_refusal(self, size: int) -> Reply | None:
        """Why this chunk is refused, decided before any of it is read; ``None``: it is
        wanted, and its size is counted against the budget already."""
        assert self.session is not None and self.envelope is not None
        if not self.session.host_name:
            return NEED_EHLO
        if self._auth_required and not self.session.authenticated:
            return replies.AUTH_REQUIRED
        if not self.envelope.rcpt_tos:
            return NEED_RCPT
        held = len(self._body) if self._body is not None else 0
        if self.data_size_limit and held + size > self.data_size_limit:
            return replies.TOO_BIG
        if self._body is None:
            self._body = BodyBuffer(self.budget)
        if not self._body.reserve(size):
            return NO_ROOM
        return None

    async def _read_chunk(self, body: BodyBuffer, size: int) -> None:
        remaining = size
        while remaining:
            piece = await self._reader.read(min(remaining, _PIECE))
            if not piece:
                raise asyncio.IncompleteReadError(b"", remaining)
            body.add(piece)
            remaining -= len(piece)

    async def _discard(self, size: int) -> None:
        """Read ``size`` octets of chunk data and drop them, a piece at a time."""
        remaining = size
        while remaining:
            piece = await self._reader.read(min(remaining, _PIECE))
            if not piece:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(piece)

    async def _refuse_chunk(self, refusal: Reply) -> None:
        if refusal not in (replies.TOO_BIG, NO_ROOM):
            await self.push(str(refusal))  # no transaction to fail
            return
        # The transaction fails as a whole (RFC 3030 2: no more chunks are sent for it).
        self._report(refusal)
        self._set_post_data_state()
        await self.push(str(refusal))
        await self.after_message()

    def _report(self, refusal: Reply) -> None:
        if refusal == replies.TOO_BIG:
            self.on_too_big()
        elif refusal == NO_ROOM:
            self.on_no_room()

    # -- the end of a message ---------------------------------------------------------------

    async def _deliver(self, body: BodyBuffer) -> None:
        """Hand the complete message to ``handle_DATA`` and send its reply; ``body`` stays
        counted against the budget until the caller releases it, after the hand-off."""
        assert self.envelope is not None
        # One bytes object, referenced only by the envelope, so the handler can let it go
        # as soon as it built the final message (no other copy lives on here).
        self.envelope.original_content = body.take_bytes()
        self.envelope.content = self.envelope.original_content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

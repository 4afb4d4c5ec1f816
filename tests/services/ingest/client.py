"""A raw SMTP client for tests that need exact bytes (pipelining, bare LF, drains)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable


class Raw:
    """One SMTP connection driven line by line."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(
        cls, port: int, tls: ssl.SSLContext | None = None, source: str | None = None
    ) -> Raw:
        """Connect to 127.0.0.1:``port`` (TLS from the first byte when ``tls`` is given),
        from loopback address ``source`` when given (127.0.0.2 is another client)."""
        local = (source, 0) if source else None
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls, local_addr=local)
        return cls(reader, writer)

    async def reply(self, timeout: float = 15.0) -> tuple[int, str]:
        """The next (possibly multi-line) reply: its code and its text lines joined by \\n."""
        lines: list[str] = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
            if not line:
                raise ConnectionError("connection closed: " + "\n".join(lines))
            text = line.decode("utf-8", errors="replace").rstrip("\r\n")
            lines.append(text[4:])
            if text[3:4] != "-":
                return int(text[:3]), "\n".join(lines)

    async def send(self, data: bytes) -> None:
        """Write bytes as they are."""
        self.writer.write(data)
        await self.writer.drain()

    async def cmd(self, line: str | bytes) -> tuple[int, str]:
        """Send one command line and read its reply."""
        raw = line.encode() if isinstance(line, str) else line
        await self.send(raw + b"\r\n")
        return await self.reply()

    async def starttls(self, context: ssl.SSLContext) -> None:
        """STARTTLS and the handshake (asyncio 3.11+ upgrades the stream in place)."""
        code, _ = await self.cmd("STARTTLS")
        assert code == 220
        await self.writer.start_tls(context, server_hostname="localhost")

    async def closed(self, timeout: float = 15.0) -> bool:
        """Whether the server closes the connection (EOF) within ``timeout``."""
        data = await asyncio.wait_for(self.reader.read(), timeout)
        return data == b""

    async def close(self) -> None:
        """Close our side."""
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds (a deadline, so the
    test does not depend on machine speed)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.01)

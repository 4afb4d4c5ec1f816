"""A TCP forwarder on loopback that a test can take down and bring back: a database (or any
server) that goes away and returns, with real sockets, without touching the shared server.

    proxy = await TcpProxy.start("127.0.0.1", 25432)
    url = f"postgresql://postline@127.0.0.1:{proxy.port}/db"
    proxy.down()   # open connections are cut, new ones closed at once
    proxy.up()
    await proxy.close()
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """Forwards every connection to ``host:port`` while up (see the module docstring)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.target = port
        self.port = 0
        self.is_up = True
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def start(cls, host: str, port: int) -> TcpProxy:
        """A proxy to ``host:port`` listening on an ephemeral loopback port."""
        proxy = cls(host, port)
        proxy._server = await asyncio.start_server(proxy._accept, "127.0.0.1", 0)
        proxy.port = proxy._server.sockets[0].getsockname()[1]
        return proxy

    def down(self) -> None:
        """Cut every open connection; refuse new ones until :meth:`up`."""
        self.is_up = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def up(self) -> None:
        """Forward again."""
        self.is_up = True

    async def close(self) -> None:
        """Stop listening and cut everything."""
        self.down()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.is_up:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        self._tasks.update(pipes)
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for task in pipes:
            task.cancel()
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.transport.abort()
        self._tasks.difference_update(pipes)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()

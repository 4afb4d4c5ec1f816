"""Binding the configured listeners and stopping them.

Servers are created with ``loop.create_server`` (aiosmtpd's ``Controller`` runs its own
thread and loop and cannot bind port 0). An implicit-TLS listener wraps the
socket in TLS before the first byte; the others offer STARTTLS when a certificate is
configured. This module does not speak SMTP (``server.py``).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass

from services.ingest.config import ListenerConfig
from services.ingest.core import IngestCore
from services.ingest.server import IngestSMTP
from shared.errors import ListenError


@dataclass
class Listener:
    """A bound listener."""

    config: ListenerConfig
    server: asyncio.Server

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        sock: socket.socket = self.server.sockets[0]
        return int(sock.getsockname()[1])


async def bind(
    core: IngestCore, listeners: list[ListenerConfig], tls: ssl.SSLContext | None, source: str
) -> list[Listener]:
    """Bind every listener; :class:`ListenError` names the one that cannot be bound."""
    loop = asyncio.get_running_loop()
    bound: list[Listener] = []
    try:
        for i, config in enumerate(listeners):
            implicit = tls if config.mode == "implicit_tls" else None
            try:
                server = await loop.create_server(
                    lambda c=config: IngestSMTP(core, c, tls),
                    config.host,
                    config.port,
                    ssl=implicit,
                    ssl_handshake_timeout=30.0 if implicit else None,
                    reuse_address=True,
                )
            except OSError as exc:
                # A port in use is not a bug: one line naming the key, no traceback.
                key = f"ingest.listeners[{i}].port"
                reason = exc.strerror or str(exc)
                raise ListenError(key, config.host, config.port, reason) from exc
            bound.append(Listener(config, server))
    except ListenError:
        await close(bound)
        raise
    return bound


async def close(listeners: list[Listener]) -> None:
    """Stop accepting connections (established sessions are not touched)."""
    for listener in listeners:
        listener.server.close()

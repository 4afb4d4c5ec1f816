"""Per-connection and per-transaction state, in aiosmtpd's own Session and Envelope.

aiosmtpd creates a fresh :class:`Envelope` at MAIL's end (``_set_post_data_state``), at RSET
and at EHLO, and one :class:`Session` per connection (again after STARTTLS, RFC 3207 4.2).
Keeping Postline's transaction in the envelope and its session facts in the session means
the state ends exactly when aiosmtpd's does, and the hooks in ``handler.py`` need nothing but
the arguments aiosmtpd passes them. This module holds no logic.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from aiosmtpd.smtp import Envelope, Session

from services.ingest.policy.base import SessionInfo, Transaction


class IngestEnvelope(Envelope):
    """aiosmtpd's envelope plus the Postline transaction started by an accepted MAIL."""

    def __init__(self) -> None:
        super().__init__()
        self.txn: Transaction | None = None
        #: MAIL FROM carried REQUIRETLS (RFC 8689), taken out of its parameters by the
        #: session before aiosmtpd, which refuses parameters it does not know, reads them.
        self.requiretls = False
        #: The DSN parameters (RFC 3461) of the MAIL or RCPT being answered, taken from its
        #: parameter string before aiosmtpd upper-cases it (xtext is case-sensitive).
        self.dsn_params: list[tuple[str, str]] = []


class IngestSession(Session):
    """aiosmtpd's session plus what the policy checks see of it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, info: SessionInfo) -> None:
        super().__init__(loop)
        self.info = info

    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        # aiosmtpd sets this legacy field after AUTH and logs a deprecation warning on every
        # access through its own property; we use auth_data (the User).
        self._login_data = value


def tls_version(transport: asyncio.BaseTransport | None) -> str | None:
    """The TLS protocol version of a transport ("TLSv1.3"), ``None`` when plaintext."""
    obj = transport.get_extra_info("ssl_object") if transport is not None else None
    return obj.version() if isinstance(obj, ssl.SSLObject | ssl.SSLSocket) else None

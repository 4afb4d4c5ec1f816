"""Sessions the ingest tests open again and again: a logged-in submission client, a relay
session after EHLO, and the rejection event a refused command leaves."""

from __future__ import annotations

import aiosmtplib

from shared.wire.records import EventKind
from tests.services.ingest.client import Raw
from tests.services.ingest.conftest import PASSWORD, Running

MESSAGE = b"From: alice@example.com\r\nTo: bob@dest.test\r\nSubject: hi\r\n\r\nHello.\r\n"


async def logged_in(ingest: Running, user: str = "alice") -> aiosmtplib.SMTP:
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1",
        port=ingest.port("smtps"),
        use_tls=True,
        tls_context=ingest.pki.client_context(),
    )
    await client.connect()
    await client.login(user, PASSWORD)
    return client


async def relay_session(ingest: Running) -> Raw:
    raw = await Raw.open(ingest.port("relay"))
    assert (await raw.reply())[0] == 220
    assert (await raw.cmd("EHLO client.test"))[0] == 250
    return raw


async def rejection(ingest: Running, check: str) -> None:
    events = await ingest.events(1)
    assert [(e.kind, e.check) for e in events] == [(EventKind.REJECTED, check)]

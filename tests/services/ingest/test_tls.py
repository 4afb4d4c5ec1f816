"""Certificate reload: on file change (watcher) and on SIGHUP (reload hooks)."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import time

from tests.services.ingest.client import Raw
from tests.services.ingest.conftest import Running, StartIngest
from tests.services.ingest.pki import make_pki


async def handshake_ok(ingest: Running, context: ssl.SSLContext) -> bool:
    try:
        raw = await Raw.open(ingest.port("smtps"), tls=context)
    except ssl.SSLError:
        return False
    code, _ = await raw.reply()
    await raw.cmd("QUIT")
    await raw.close()
    return code == 220


async def wait_handshake(ingest: Running, context: ssl.SSLContext) -> None:
    deadline = time.monotonic() + 10
    while not await handshake_ok(ingest, context):
        assert time.monotonic() < deadline, "the new certificate was never served"
        await asyncio.sleep(0.05)


async def test_tls_1_2_and_up_only(start_ingest: StartIngest) -> None:
    ingest = await start_ingest()
    assert ingest.stage.tls is not None
    assert ingest.stage.tls.context.minimum_version == ssl.TLSVersion.TLSv1_2
    tls12 = ingest.pki.client_context()
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    raw = await Raw.open(ingest.port("smtps"), tls=tls12)
    assert raw.writer.get_extra_info("ssl_object").version() == "TLSv1.2"
    await raw.close()


async def test_certificate_reloaded_when_files_change(start_ingest: StartIngest) -> None:
    ingest = await start_ingest()
    assert await handshake_ok(ingest, ingest.pki.client_context())
    renewed = make_pki(ingest.tmp / "renewed")
    assert not await handshake_ok(ingest, renewed.client_context())
    shutil.copy(renewed.key, ingest.pki.key)
    shutil.copy(renewed.cert, ingest.pki.cert)
    await wait_handshake(ingest, renewed.client_context())


async def test_certificate_reloaded_on_sighup(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(tls_watch="1d")
    renewed = make_pki(ingest.tmp / "renewed")
    shutil.copy(renewed.key, ingest.pki.key)
    shutil.copy(renewed.cert, ingest.pki.cert)
    for hook in ingest.ctx.reload_hooks:  # what the runtime does on SIGHUP
        hook()
    assert await handshake_ok(ingest, renewed.client_context())


async def test_broken_files_keep_the_old_certificate(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(tls_watch="1d")
    ingest.pki.cert.write_text("not a certificate")
    for hook in ingest.ctx.reload_hooks:
        hook()
    assert await handshake_ok(ingest, ingest.pki.client_context())

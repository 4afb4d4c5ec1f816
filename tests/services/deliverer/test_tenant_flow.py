"""A non-default tenant's message through the signer and the deliverer on one embedded bus:
every Delivery (retries included) and every event carries the tenant, and suppressions of
another tenant do not touch it (``shared.suppressions``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from services.signer.main import create as create_signer
from shared.config import Config, CoreConfig
from shared.wire.records import (
    ClientInfo,
    EventKind,
    Submission,
    Suppression,
    SuppressionReason,
    new_id,
    now,
)
from shared.wire.topics import OUTBOUND, SUBMITTED, SUPPRESSIONS, retry_topic
from testing.dnsserver import LOOPBACKS, DnsServer, mx_records
from testing.smtpsink import SmtpSink, free_port
from testing.stage import stage_context
from tests.services.deliverer.harness import (
    Running,
    deliverer_section,
    read_topic,
    running_deliverer,
)

TENANT = "acme"
DATA = b"From: news@acme.test\r\nTo: x@dest.test\r\nSubject: hello\r\n\r\nHello.\r\n"


def submission(received_at: float, *locals_: str) -> Submission:
    """A message of tenant ``acme`` to ``<local>@dest.test`` for each of ``locals_``."""
    return Submission(
        id=new_id(),
        received_at=received_at,
        client=ClientInfo(ip="127.0.0.1", auth_user="app"),
        mail_from="news@acme.test",
        rcpt_to=tuple(f"{local}@dest.test" for local in locals_),
        data=DATA,
        tenant=TENANT,
    )


@contextlib.asynccontextmanager
async def running_signer(tmp_path: Path, deliverer: Running) -> AsyncIterator[None]:
    """A signer on the deliverer's bus (unsigned mail allowed: keys are not the point here)."""
    (tmp_path / "dkim").mkdir(parents=True)
    (tmp_path / "verp.key").write_bytes(b"0123456789abcdef-test-secret")
    section = {
        "keys_dir": str(tmp_path / "dkim"),
        "secret_file": str(tmp_path / "verp.key"),
        "bounce_domain": "bounces.acme.test",
        "allow_unsigned": True,
        "workers": 1,
        "unsubscribe_url": "https://mail.acme.test/unsubscribe/",
    }
    core = CoreConfig(embedded=deliverer.ctx.config.core.embedded, signer=section)
    ctx = stage_context("signer", Config(core, "test.toml", {}), deliverer.bus)
    stage = await create_signer(ctx)
    task = asyncio.create_task(stage.run(ctx))
    try:
        await asyncio.wait_for(ctx.wait_ready(), 10)
        yield
    finally:
        ctx.stopping.set()
        await asyncio.wait_for(task, 30)


async def test_tenant_on_every_delivery_and_event(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port)) as d,
    ):
        await d.bus.publish(
            [
                SUPPRESSIONS.out(
                    Suppression(
                        address=address,
                        reason=SuppressionReason.COMPLAINT,
                        at=1.0,
                        tenant=tenant,
                    )
                )
                for address, tenant in (("mine@dest.test", TENANT), ("other@dest.test", "b"))
            ]
        )
        sink.script_rcpt("gone@dest.test", "550 5.1.1 No such user")
        sink.script_rcpt("later@dest.test", "451 4.3.0 try later")
        sink.script_rcpt("stale@dest.test", "451 4.3.0 try later")
        async with running_signer(tmp_path / "signer", d):
            fresh = submission(now(), "ok", "gone", "later", "mine", "other")
            stale = submission(1_000.0, "stale")  # past its maximum age: expires on deferral
            await d.bus.publish([SUBMITTED.out(fresh), SUBMITTED.out(stale)])
            await d.wait_events(EventKind.EXPIRED, 1)
            await d.wait_events(EventKind.DELIVERED, 3)  # "later" on its retry
            await d.wait_events(EventKind.BOUNCED, 1)
            await d.settle()
        outbound = await read_topic(d.bus, OUTBOUND, 5)
        (retry,) = await read_topic(d.bus, retry_topic("1s"), 1)
    # Connection attempts are about the destination, not a tenant's mail (as throttling).
    mail_events = [e for e in d.events if e.kind is not EventKind.TLS_SESSION]
    kinds = sorted(e.kind.value for e in mail_events)
    assert kinds == [
        "bounced",
        "deferred",
        "deferred",
        "delivered",
        "delivered",
        "delivered",
        "expired",
        "signed",
        "signed",
        "suppressed",
    ]
    assert {e.tenant for e in mail_events} == {TENANT}
    assert d.of(EventKind.TLS_SESSION)
    (suppressed,) = d.of(EventKind.SUPPRESSED)
    assert suppressed.recipient == "mine@dest.test"  # tenant b's complaint does not apply
    assert sorted(sink.recipients()) == ["later@dest.test", "ok@dest.test", "other@dest.test"]
    assert {delivery.tenant for delivery in outbound} == {TENANT}
    assert (retry.rcpt_to, retry.tenant) == (("later@dest.test",), TENANT)

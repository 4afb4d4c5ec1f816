"""A verified tenant domain's mail has its own return path, and its bounces come back.

The signer and the bouncer run on one embedded bus with real SMTP sockets: the signer puts a
verified From domain's VERP return paths at that domain's host (``bounces.D`` or its
``bounce_domain``), so SPF aligns for DMARC (RFC 7489 3.1.2); the bouncer accepts a DSN sent
there and attributes it by the VERP token. Other mail keeps ``signer.bounce_domain``, and the
intake refuses hosts of unknown, unverified and removed domains even with a valid token.
"""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.bouncer.main import create as create_bouncer
from services.bouncer.stage import BouncerStage
from services.signer.main import create as create_signer
from services.signer.stage import SignerStage
from shared import tenant_admin
from shared.bus.embedded import EmbeddedBus
from shared.config import load_config
from shared.runtime.stage import StageContext
from shared.sealing import KEK_BYTES, load_keyring
from shared.secretfile import ensure_secret_file
from shared.tenant_domains import add_domain, mark_verified, remove_domain
from shared.wire.records import ClientInfo, Delivery, Event, EventKind, Submission, new_id
from shared.wire.tokens import parse_verp, verp_address
from shared.wire.topics import EVENTS, OUTBOUND, SUBMITTED
from testing.stage import stage_context
from tests.services.bouncer.conftest import SECRET, wait_for_records

DEADLINE = 20.0
#: An injected time for records and key selectors; nothing here reads the clock's value.
NOW = 1_797_292_800.0
OURS = "bounces.relay.test"  # signer.bounce_domain = bouncer.bounce_domain
RECIPIENT = "nobody@customer.example"  # the failed recipient of the golden DSN
DSN = Path(__file__).resolve().parents[2] / "data" / "bounces" / "postfix_dsn_user_unknown.eml"


@dataclass
class Stages:
    """The signer and bouncer under test, on one bus."""

    bus: EmbeddedBus
    signer: SignerStage
    bouncer: BouncerStage


def write_config(tmp_path: Path) -> Path:
    kek = tmp_path / "kek.key"
    ensure_secret_file(kek, KEK_BYTES)
    (tmp_path / "verp.key").write_bytes(SECRET)
    path = tmp_path / "postline.toml"
    path.write_text(
        f"""
[embedded]
path = "{tmp_path / "bus.db"}"
partitions = 2
[secrets]
kek_file = "{kek}"
[http]
port = 0
[signer]
keys_dir = "{tmp_path / "dkim"}"
secret_file = "{tmp_path / "verp.key"}"
bounce_domain = "{OURS}"
workers = 1
allow_unsigned = true
[bouncer]
listen_port = 0
bounce_domain = "{OURS}"
secret_file = "{tmp_path / "verp.key"}"
[bouncer.dsn]
postmaster = "postmaster@relay.test"
reporting_mta = "relay.test"
"""
    )
    return path


@pytest.fixture
async def stages(tmp_path: Path) -> AsyncIterator[Stages]:
    """Tenant ``shop`` with verified ``shop.test`` (default host) and ``brand.test`` (host
    ``rp.brand.test``) and unverified ``new.test``; then a signer and a bouncer, running."""
    config = load_config(write_config(tmp_path), environ={})
    bus = EmbeddedBus(config.core.embedded)
    await bus.start()
    keyring = load_keyring(config)
    await tenant_admin.add(bus, "shop", by="test")
    for name, host in (("shop.test", ""), ("brand.test", "rp.brand.test"), ("new.test", "")):
        await add_domain(bus, keyring, "shop", name, now=NOW, by="test", bounce_domain=host)
    for name in ("shop.test", "brand.test"):
        await mark_verified(bus, "shop", name, verified=True, now=NOW, by="test")
    contexts: list[StageContext] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        signer_ctx = stage_context("signer", config, bus)
        signer = await create_signer(signer_ctx)
        bouncer_ctx = stage_context("bouncer", config, bus)
        bouncer = await create_bouncer(bouncer_ctx)
        for ctx, stage in ((signer_ctx, signer), (bouncer_ctx, bouncer)):
            contexts.append(ctx)
            tasks.append(asyncio.create_task(stage.run(ctx)))
            await asyncio.wait_for(ctx.wait_ready(), DEADLINE)
        yield Stages(bus, signer, bouncer)
    finally:
        for ctx in contexts:
            ctx.stopping.set()
        for task in tasks:
            await asyncio.wait_for(task, DEADLINE)
        await bus.close()


def submission(from_domain: str, tenant: str = "shop") -> Submission:
    data = (
        f"From: Shop <news@{from_domain}>\r\nTo: {RECIPIENT}\r\nSubject: hi\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@{from_domain}>\r\n\r\nHello.\r\n"
    ).encode()
    return Submission(
        id=new_id(),
        received_at=NOW,
        client=ClientInfo(ip="127.0.0.1"),
        mail_from=f"news@{from_domain}",
        rcpt_to=(RECIPIENT,),
        data=data,
        tenant=tenant,
    )


async def deliveries_of(bus: EmbeddedBus, subs: list[Submission]) -> dict[str, Delivery]:
    """The one Delivery of each submission, by submission id."""
    wanted = {sub.id for sub in subs}
    found = await wait_for_records(
        bus,
        OUTBOUND,  # type: ignore[arg-type]
        lambda rs: wanted <= {r.message_id for r in rs},  # type: ignore[attr-defined]
        timeout=DEADLINE,
    )
    return {d.message_id: d for d in found if isinstance(d, Delivery)}


def rcpt_reply(port: int, rcpt: str) -> int:
    """The RCPT TO reply code for ``rcpt`` from the null sender."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("mx.customer.example")
        client.mail("<>")
        return client.rcpt(rcpt)[0]


def send_dsn(port: int, rcpt: str) -> tuple[int, bytes]:
    """The golden Postfix DSN, addressed to ``rcpt``; the DATA reply."""
    raw = DSN.read_bytes().replace(b"b+token@bounces.postline.test", rcpt.encode())
    data = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("mx.customer.example")
        client.mail("<>")
        code, text = client.rcpt(rcpt)
        return (code, text) if code >= 400 else client.data(data)


def bounced(message_id: str) -> Callable[[list[object]], bool]:
    def found(records: list[object]) -> bool:
        return any(
            isinstance(r, Event) and r.kind is EventKind.BOUNCED and r.message_id == message_id
            for r in records
        )

    return found


async def test_verified_domains_get_their_own_return_path_and_bounces_come_back(
    stages: Stages,
) -> None:
    shop, brand = submission("shop.test"), submission("brand.test")
    await stages.bus.publish([SUBMITTED.out(shop), SUBMITTED.out(brand)])
    made = await deliveries_of(stages.bus, [shop, brand])
    for sub, host in ((shop, "bounces.shop.test"), (brand, "rp.brand.test")):
        return_path = made[sub.id].mail_from
        assert return_path.endswith(f"@{host}"), return_path
        # The token is the same as before tenants: only the domain after "@" moved.
        assert return_path == verp_address("b", host, sub.id, RECIPIENT, SECRET)
        assert parse_verp(return_path, SECRET).message_id == sub.id
        code, text = await asyncio.to_thread(send_dsn, stages.bouncer.port, return_path)
        assert (code, text) == (250, b"2.0.0 Report accepted")
        events = await wait_for_records(stages.bus, EVENTS, bounced(sub.id), timeout=DEADLINE)
        [event] = [
            e
            for e in events
            if isinstance(e, Event) and e.kind is EventKind.BOUNCED and e.message_id == sub.id
        ]
        assert (event.recipient, event.classification) == (RECIPIENT, "hard")


async def test_other_mail_keeps_the_global_bounce_domain(stages: Stages) -> None:
    unverified = submission("new.test")
    not_a_tenant_domain = submission("elsewhere.test")
    another_tenants = submission("shop.test", tenant="default")  # shop's domain, not its mail
    subs = [unverified, not_a_tenant_domain, another_tenants]
    await stages.bus.publish([SUBMITTED.out(sub) for sub in subs])
    made = await deliveries_of(stages.bus, subs)
    for sub in subs:
        assert made[sub.id].mail_from == verp_address("b", OURS, sub.id, RECIPIENT, SECRET)


async def test_intake_refuses_hosts_that_are_not_ours(stages: Stages) -> None:
    port = stages.bouncer.port

    def valid_token_at(host: str) -> str:
        return verp_address("b", host, new_id(), RECIPIENT, SECRET)

    assert await asyncio.to_thread(rcpt_reply, port, valid_token_at(OURS)) == 250
    assert await asyncio.to_thread(rcpt_reply, port, valid_token_at("bounces.shop.test")) == 250
    # A forged token at a tenant's host is refused as at ours: the HMAC decides.
    forged = verp_address("b", "bounces.shop.test", new_id(), RECIPIENT, b"x" * 32)
    assert await asyncio.to_thread(rcpt_reply, port, forged) == 550
    for host in ("bounces.unknown.test", "bounces.new.test"):  # unknown, unverified
        assert await asyncio.to_thread(rcpt_reply, port, valid_token_at(host)) == 550
    # A domain removed while the bouncer runs: its host is refused once the change arrives.
    await remove_domain(stages.bus, "shop", "shop.test", by="test")
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while await asyncio.to_thread(rcpt_reply, port, valid_token_at("bounces.shop.test")) != 550:
        assert loop.time() < end, "the removed domain's host is still accepted"
        await asyncio.sleep(0.05)
    assert await asyncio.to_thread(rcpt_reply, port, valid_token_at("rp.brand.test")) == 250

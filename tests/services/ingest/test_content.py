"""The content policy over real SMTP on the embedded bus: a refused attachment gets its 5xx
before the 250 with a ``rejected`` event and nothing on the bus, a clean one is queued, a
tenant's own rules are followed live, and a signed message ingest would break is refused."""

from __future__ import annotations

import base64
from email import policy
from email.message import EmailMessage

import msgspec

from shared import tenant_access, tenant_admin
from shared.wire.records import ContentRules, EventKind, SendingDomain, Tenant
from shared.wire.topics import SUBMITTED
from tests.services.ingest.client import Raw, until
from tests.services.ingest.conftest import Running, StartIngest
from tests.services.ingest.sessions import relay_session

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 8
TENANT, LOGIN, SECRET = "acme", "acme-app", "correct horse battery staple"


def with_attachment(name: str, data: bytes, sender: str = "app@example.com") -> bytes:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = sender
    msg["To"] = "ann@dest.test"
    msg["Subject"] = "Your file"
    msg.set_content("Attached.\n")
    msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg.as_bytes()


async def transaction(raw: Raw, data: bytes, sender: str = "app@example.com") -> tuple[int, str]:
    """MAIL, RCPT, DATA and the message (dot-stuffed): the reply to the message."""
    assert (await raw.cmd(f"MAIL FROM:<{sender}>"))[0] == 250
    assert (await raw.cmd("RCPT TO:<ann@dest.test>"))[0] == 250
    assert (await raw.cmd("DATA"))[0] == 354
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    return await raw.cmd(stuffed + (b"" if stuffed.endswith(b"\r\n") else b"\r\n") + b".")


async def test_an_exe_is_refused_and_a_pdf_is_queued(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.1/32"])
    raw = await relay_session(ingest)
    code, text = await transaction(raw, with_attachment("invoice.pdf.exe", b"MZ"))
    assert (code, text) == (
        550,
        '5.7.1 Attachment "invoice.pdf.exe" refused: file type .exe is not accepted',
    )
    [event] = await ingest.events(1)
    assert (event.kind, event.check) == (EventKind.REJECTED, "attachment")
    assert event.reply is not None and event.reply.code == 550
    code, text = await transaction(raw, with_attachment("invoice.pdf", PDF))
    assert code == 250 and "queued as" in text
    await raw.close()
    [submission] = await ingest.records(SUBMITTED, 1)  # only the PDF reached the bus
    assert b'filename="invoice.pdf"' in submission.data
    labels = {"result": "rejected", "check": "attachment"}
    assert ingest.ctx.registry.get_sample_value("postline_ingest_messages_total", labels) == 1.0


async def test_a_program_renamed_to_pdf_is_refused(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.1/32"])
    raw = await relay_session(ingest)
    program = b"MZ" + bytes(58) + (64).to_bytes(4, "little") + b"PE\x00\x00" + bytes(200)
    code, text = await transaction(raw, with_attachment("report.pdf", program))
    assert code == 550 and text.startswith('5.7.1 Attachment "report.pdf" refused: it is a Win')
    await raw.close()


async def test_a_signed_message_ingest_would_normalise_is_refused(
    start_ingest: StartIngest,
) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.1/32"], smuggling="normalise")
    raw = await relay_session(ingest)
    signed = (
        b"DKIM-Signature: v=1; d=example.com; s=s; h=from:subject; bh=x; b=y\r\n"
        b"From: app@example.com\r\nSubject: hi\r\n\r\nline one\nline two\r\n"
    )
    code, text = await transaction(raw, signed)
    assert code == 550 and text.startswith("5.6.0 Message is DKIM-signed and has bare CR or LF")
    [event] = await ingest.events(1)
    assert event.check == "signed_changes"
    code, _ = await transaction(raw, signed.replace(b"DKIM-Signature", b"X-Not-Signature"))
    assert code == 250  # unsigned: normalised and sent, as configured
    await raw.close()


async def login(ingest: Running) -> Raw:
    raw = await Raw.open(ingest.port("smtps"), tls=ingest.pki.client_context())
    assert (await raw.reply())[0] == 220
    assert (await raw.cmd("EHLO client.test"))[0] == 250
    auth = base64.b64encode(f"\0{LOGIN}\0{SECRET}".encode()).decode()
    assert (await raw.cmd(f"AUTH PLAIN {auth}"))[0] == 235
    return raw


async def set_rules(ingest: Running, rules: ContentRules) -> None:
    """Give the tenant ``rules`` on the bus and wait until the running ingest has them."""
    after = await tenant_admin.update(
        ingest.bus,
        TENANT,
        lambda t: msgspec.structs.replace(
            t, settings=msgspec.structs.replace(t.settings, content=rules)
        ),
        by="test",
    )
    table = ingest.stage.core.policy.tenants
    await until(lambda: (table.get(TENANT) or Tenant(id="")).revision == after.revision)


async def test_a_tenants_own_rules_are_followed_live(start_ingest: StartIngest) -> None:
    ingest = await start_ingest()
    await tenant_admin.add(ingest.bus, TENANT, by="test")
    domains = (SendingDomain(name="acme.test", verified=True),)
    await tenant_admin.update(
        ingest.bus, TENANT, lambda t: msgspec.structs.replace(t, domains=domains), by="test"
    )
    await tenant_access.add_credential(ingest.bus, TENANT, LOGIN, password=SECRET, by="test")
    await until(lambda: ingest.stage.core.policy.tenants.by_credential(LOGIN) is not None)
    raw = await login(ingest)
    installer = with_attachment("setup.msi", b"installer", sender="app@acme.test")
    assert (await transaction(raw, installer, "app@acme.test"))[0] == 550
    assert (await raw.cmd("RSET"))[0] == 250
    await set_rules(ingest, ContentRules(allowed_extensions=("msi",), max_attachment_size=4096))
    assert (await transaction(raw, installer, "app@acme.test"))[0] == 250  # same session
    big = with_attachment("big.pdf", PDF * 2, sender="app@acme.test")
    code, text = await transaction(raw, big, "app@acme.test")
    assert (code, text) == (
        552,
        f'5.3.4 Attachment "big.pdf" is {len(PDF) * 2} bytes, more than the 4096 allowed',
    )
    await raw.close()
    rejected = [e for e in await ingest.events(3) if e.kind is EventKind.REJECTED]
    # Two messages' events: on different partitions they come in no set order.
    assert sorted((e.check, e.tenant) for e in rejected) == [
        ("attachment", TENANT),
        ("attachment_size", TENANT),
    ]

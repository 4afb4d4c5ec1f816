"""8-bit mail end to end: the signer makes it 7-bit before signing, the deliverer sends it to
an MX without 8BITMIME, and both DKIM signatures verify (dkimpy, keys from real DNS) on what
the MX received. What the signer must leave 8-bit is bounced, never sent: 5.6.7 for SMTPUTF8
mail with UTF-8 headers, 5.6.3 for an 8-bit body it could not convert."""

from __future__ import annotations

from pathlib import Path

from services.signer.keys import KeyStore
from shared.wire.records import EventKind
from testing.dnsserver import LOOPBACKS, DnsServer, mx_records
from testing.smtpsink import SmtpSink, free_port
from tests.services.deliverer.harness import deliverer_section, running_deliverer
from tests.services.signer.conftest import dns_records, verify
from tests.services.signer.test_stage import running, submission

HEAD = b"From: Alice <alice@example.test>\r\nTo: b@dest.test\r\nMessage-ID: <m@example.test>\r\n"
ALTERNATIVE = (
    HEAD + b"Subject: alternative\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/alternative; boundary=alt\r\n\r\n"
    b"--alt\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    + "Grüße aus Köln, vielen Dank für Ihre Bestellung.\r\n".encode()
    + b"\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\n"
    + "<p>Здравствуйте! Ваш заказ отправлен.</p>\r\n".encode()
    + b"\r\n--alt--\r\n"
)
NOT_MIME = HEAD + b"Subject: plain\r\n\r\n" + "Grüße, ça va?\r\n".encode()
UTF8_HEADERS = HEAD + "Subject: Grüße\r\n\r\nGrüße\r\n".encode()
SENDER_SIGNED = (
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=x; b=; bh=\r\n"
    + HEAD
    + b"Subject: signed by its sender\r\n\r\n"
    + "Grüße\r\n".encode()
)


async def test_converted_mail_verifies_at_an_mx_without_8bitmime(
    tmp_path: Path, keys_dir: Path, store: KeyStore
) -> None:
    subs = {
        "alternative@dest.test": submission(("alternative@dest.test",), ALTERNATIVE),
        "plain@dest.test": submission(("plain@dest.test",), NOT_MIME),
        "headers@dest.test": submission(("headers@dest.test",), UTF8_HEADERS, smtputf8=True),
        "signed@dest.test": submission(("signed@dest.test",), SENDER_SIGNED),
    }
    signer_dir, deliverer_dir = tmp_path / "signer", tmp_path / "deliverer"
    signer_dir.mkdir()
    deliverer_dir.mkdir()
    async with running(signer_dir, keys_dir) as signer:
        await signer.submit(*subs.values())
        events = await signer.events(len(subs))
        made = await signer.deliveries()
    notes = {e.message_id: e.detail for e in events if e.kind is EventKind.SIGNED}
    assert (
        "; 8-bit content made 7-bit (2 parts re-encoded)" in notes[subs["alternative@dest.test"].id]
    )
    assert (
        "; stays 8-bit: 8-bit octets in the header section" in notes[subs["headers@dest.test"].id]
    )
    assert "; stays 8-bit: already DKIM-signed" in notes[subs["signed@dest.test"].id]
    flags = {d.rcpt_to[0]: d.body_8bit for d in made}
    assert flags == {
        "alternative@dest.test": False,
        "plain@dest.test": False,
        "headers@dest.test": True,
        "signed@dest.test": True,
    }

    port = free_port(LOOPBACKS[:1])
    records = {**dns_records(store), **mx_records("dest.test", (10, LOOPBACKS[0]))}
    async with (
        DnsServer(records) as dns,
        SmtpSink(LOOPBACKS[0], port, eightbitmime=False) as sink,
        running_deliverer(deliverer_dir, deliverer_section(dns, port)) as d,
    ):
        await d.send(*made)
        delivered = await d.wait_events(EventKind.DELIVERED, 2)
        bounced = await d.wait_events(EventKind.BOUNCED, 2)
        await d.settle()
        assert sorted(e.recipient for e in delivered) == [
            "alternative@dest.test",
            "plain@dest.test",
        ]
        codes = {e.recipient: e.reply.enhanced if e.reply else "" for e in bounced}
        assert codes == {"headers@dest.test": "5.6.7", "signed@dest.test": "5.6.3"}
        assert len(sink.messages) == 2
        for received in sink.messages:
            assert received.data.isascii() and received.mail_options == ()
            assert await verify(received.data, dns.port, 0)  # RSA
            assert await verify(received.data, dns.port, 1)  # Ed25519

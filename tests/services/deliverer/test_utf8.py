"""Internationalised and 8-bit mail to an MX that offers neither SMTPUTF8 nor 8BITMIME, through
the real deliverer stage on the embedded bus and on Kafka (issue 18 part 6).

Every awkward Delivery gets its own permanent outcome (RFC 6531 3.5: 5.6.7; RFC 6152 / RFC
3463: 5.6.3; RFC 3463: 5.1.3 / 5.1.7), nothing is ever sent in a form the server did not
agree to, an undecodable record is dead-lettered, and the normal Delivery after them in the
same partition is delivered: the partition keeps committing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.bus.base import TopicPartition
from shared.bus.embedded import EmbeddedBus
from shared.config import KafkaConfig
from shared.wire.records import Delivery, EventKind
from shared.wire.topics import DEAD, OUTBOUND, OutRecord
from testing.dnsserver import LOOPBACKS, DnsServer, mx_records
from testing.smtpsink import SmtpSink, free_port
from tests.services.deliverer.harness import (
    Running,
    deliverer_section,
    delivery,
    read_topic,
    running_deliverer,
)

UTF8_HEADER = "From: a@sender.test\r\nSubject: Grüße\r\n\r\nHello.\r\n".encode()
EIGHT_BIT_BODY = "From: a@sender.test\r\nSubject: 8bit\r\n\r\nGrüße.\r\n".encode()
IDN = "bücher.test"
IDN_A_LABEL = "xn--bcher-kva.test"

#: Recipient -> the enhanced status its bounce must carry, each one Delivery to dest.test.
BOUNCES = {
    "jöran@dest.test": "5.6.7",  # a UTF-8 local part (RFC 6531 3.5)
    "headers@dest.test": "5.6.7",  # ASCII addresses, SMTPUTF8 mail with UTF-8 headers
    "from-utf8@dest.test": "5.6.7",  # a UTF-8 local part in the return path
    "a b@dest.test": "5.1.3",  # an unquoted space: not an RFC 5321 mailbox
    "nul\x00@dest.test": "5.1.3",  # a NUL
    "bad-sender@dest.test": "5.1.7",  # a return path that is not a mailbox
    "eight@dest.test": "5.6.3",  # still 8-bit, and no 8BITMIME (RFC 6152 3)
    f"jöran@{IDN}": "5.6.7",  # a UTF-8 local part at a UTF-8 domain
}


def awkward() -> list[Delivery]:
    """One Delivery per entry of BOUNCES, in that order."""
    return [
        delivery("jöran@dest.test", smtputf8=True),
        delivery("headers@dest.test", smtputf8=True, body_8bit=True, data=UTF8_HEADER),
        delivery("from-utf8@dest.test", mail_from="bös@sender.test", smtputf8=True),
        delivery("a b@dest.test"),
        delivery("nul\x00@dest.test"),
        delivery("bad-sender@dest.test", mail_from="bad sender@sender.test"),
        delivery("eight@dest.test", body_8bit=True, data=EIGHT_BIT_BODY),
        delivery(f"jöran@{IDN}", smtputf8=True),
    ]


def undecodable() -> OutRecord:
    """A Delivery record whose recipient is not valid UTF-8 on the wire (a lone surrogate
    encoded as CESU-8: what a Python ``str`` holding one would become). msgspec refuses to
    encode such a ``str`` at all, so this is the only way one can reach the deliverer."""
    with pytest.raises(UnicodeEncodeError):
        OUTBOUND.encode(delivery("\ud800x@dest.test"))
    record = OUTBOUND.out(delivery("SURRx@dest.test"))
    assert record.value is not None
    return OutRecord(record.topic, record.key, record.value.replace(b"SURR", b"\xed\xa0\x80z"))


async def committed_for(d: Running, domain: str) -> int:
    """The deliverer's committed offset in ``domain``'s outbound partition."""
    partition = await d.bus.partition_of(OUTBOUND.name, domain.encode())
    consumer = d.bus.consumer("postline-deliverer", [OUTBOUND.name])
    return await consumer.committed(TopicPartition(OUTBOUND.name, partition))


async def scenario(d: Running, sink: SmtpSink, timeout: float) -> None:
    """Send the awkward Deliveries, one undecodable record, then normal mail; check each."""
    await d.send(*awkward())
    await d.bus.publish([undecodable()])
    # SMTPUTF8-flagged mail whose header and addresses are ASCII needs no extension.
    await d.send(delivery("ascii-smtputf8@dest.test", smtputf8=True), delivery("after@dest.test"))
    await d.send(delivery(f"user@{IDN}"))  # a UTF-8 domain goes as its A-label

    bounced = await d.wait_events(EventKind.BOUNCED, len(BOUNCES), timeout=timeout)
    delivered = await d.wait_events(EventKind.DELIVERED, 3, timeout=timeout)
    (dead,) = await read_topic(d.bus, DEAD, 1, timeout=timeout)
    await d.settle(timeout=timeout)

    assert {e.recipient: e.reply.enhanced if e.reply else "" for e in bounced} == BOUNCES
    assert sorted(e.recipient for e in delivered) == sorted(
        ["ascii-smtputf8@dest.test", "after@dest.test", f"user@{IDN}"]
    )
    assert dead.topic == OUTBOUND.name
    assert sorted(sink.recipients()) == sorted(
        ["ascii-smtputf8@dest.test", "after@dest.test", f"user@{IDN_A_LABEL}"]
    )
    for message in sink.messages:  # nothing 8-bit, nothing with parameters not offered
        assert message.data.isascii() and message.mail_from.isascii()
        assert message.mail_options == ()
    if isinstance(d.bus, EmbeddedBus):
        # The ten records to dest.test (seven awkward, the undecodable one, two normal) are
        # all committed: the partition never stopped. (On Kafka another member of the group
        # would rebalance the stage; there ``settle`` above proves everything fetched is
        # committed.)
        assert await committed_for(d, "dest.test") == 10


def records() -> dict[str, list[tuple[str, str]]]:
    return {
        **mx_records("dest.test", (10, LOOPBACKS[0])),
        **mx_records(IDN_A_LABEL, (10, LOOPBACKS[0])),
    }


async def test_utf8_and_malformed_addresses_bounce_and_the_partition_moves_on(
    tmp_path: Path,
) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(records()) as dns,
        SmtpSink(LOOPBACKS[0], port, eightbitmime=False) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port)) as d,
    ):
        await scenario(d, sink, timeout=15)


@pytest.mark.kafka
@pytest.mark.slow
async def test_utf8_and_malformed_addresses_on_kafka(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    port = free_port(LOOPBACKS[:1])
    kafka = KafkaConfig(bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    async with (
        DnsServer(records()) as dns,
        SmtpSink(LOOPBACKS[0], port, eightbitmime=False) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port), kafka=kafka) as d,
    ):
        await scenario(d, sink, timeout=60)

"""The quarantine end to end: a message held by the content scanner (its Quarantined record
written straight to ``postline.quarantine``, as ingest's scanner writes it) is released with
``postline quarantine release`` run as a process against the running cluster, and delivered
to the sink MX, signed, on Kafka (stage processes) and on the embedded bus (``postline run``).

It was quarantined long ago (``testing.quarantine.AT``, far past the 3 days a message is
kept): the recipient's MX defers the first attempt, and the message is still retried and
delivered, never expired at once, because a release hands it on as if just accepted.
"""

from __future__ import annotations

from collections import Counter

import msgspec
import pytest

from shared.bus.base import Bus
from shared.quarantine import entry_record
from shared.wire.records import ClientInfo, EventKind
from testing.harness import client
from testing.harness.cluster import Cluster
from testing.harness.processes import ProcessFailed, run_command
from testing.quarantine import AT, quarantined

SENDER = "app@sender.test"
RCPT = "held@flaky.test"
BODY = "Held by the scanner, released by an operator.\n"


def quarantine(cluster: Cluster, *args: str) -> str:
    """``postline quarantine ARGS`` as a process; its output (fails on a non-zero exit)."""
    log = cluster.workdir / f"quarantine-{args[0]}.log"
    return run_command(["quarantine", *args], cluster.config_path, log).stdout


def test_a_released_message_is_delivered_even_after_a_long_hold(cluster: Cluster) -> None:
    held = quarantined(
        tenant="",
        sender=SENDER,
        rcpt_to=(RCPT,),
        data=client.message(
            SENDER, [RCPT], "Quarantine scenario", BODY, ["Message-ID: <held@sender.test>"]
        ),
    )
    held = msgspec.structs.replace(
        held,
        submission=msgspec.structs.replace(
            held.submission, client=ClientInfo(ip="127.0.0.1"), tags={}
        ),
    )
    message_id = held.submission.id

    async def write(bus: Bus) -> None:
        await bus.publish([entry_record(held)])

    cluster.call(write)
    assert message_id in quarantine(cluster, "list")
    cluster.sink("flaky.test").script_rcpt(RCPT, "451 4.3.0 Greylisted, try again")

    out = quarantine(cluster, "release", message_id[:10], "--why", "e2e: wanted mail")
    assert out.splitlines()[-1] == "1 released, 0 left as they were"
    [event] = cluster.events.wait_for(EventKind.DELIVERED, recipient=RCPT, timeout=60)
    assert event.message_id == message_id
    [released] = cluster.events.events(message_id, None, [EventKind.QUARANTINE])
    assert (released.classification, released.detail) == ("released", "e2e: wanted mail")
    assert released.figures["quarantined_at"] == AT
    counts = cluster.events.counts(message_id)
    assert counts == Counter(quarantine=1, signed=1, deferred=1, delivered=1)

    sink = cluster.sink("flaky.test")
    [copy] = [m for m in sink.messages if RCPT in m.rcpt_tos]
    assert client.body_of(copy.data) == BODY.replace("\n", "\r\n").encode()
    assert client.verify_dkim(copy.data, cluster.ports.dns) == [True, True]

    # Released once: a second release is refused and nothing is sent again.
    with pytest.raises(ProcessFailed, match="already released or deleted"):
        quarantine(cluster, "release", message_id)
    assert message_id not in quarantine(cluster, "list")
    assert cluster.events.counts(message_id)["signed"] == 1

"""Content scanning end to end with a real rspamd (``deploy/local/rspamd.sh``): on Kafka (stage
processes) and on the embedded bus (``postline run``), ingest scans at the end of DATA. GTUBE
is refused before the 250; a clean message is delivered, signed, with the verdict in its
``scanned`` event; a message in the quarantine band is held, not sent, until ``postline
quarantine release`` (run as a process) hands it on, and it is then delivered and signed.

The offline rspamd scores an all-capitals subject about 2.3 (``SUBJ_ALL_CAPS``) and a plain
short message below 1, so a quarantine band from 2.0 separates them whatever the machine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from shared.wire.records import EventKind
from testing import eventschema
from testing.harness import client
from testing.harness.cluster import Cluster, ClusterOptions
from testing.harness.processes import run_command

SENDER = "app@sender.test"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@pytest.fixture(scope="module", params=[pytest.param("kafka", marks=pytest.mark.kafka), "embedded"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, rspamd_url: str
) -> Iterator[Cluster]:
    """A cluster whose ingest scans with the test rspamd, quarantining from a score of 2."""
    env = {
        "POSTLINE__INGEST__SCANNING__URL": rspamd_url,
        "POSTLINE__INGEST__SCANNING__QUARANTINE_SCORE": "2.0",
    }
    bus = request.param
    options = ClusterOptions(
        bus=bus,
        shape="split" if bus == "kafka" else "run",
        workdir=tmp_path_factory.mktemp(f"scanning-{bus}"),
        kafka_bootstrap=request.getfixturevalue("kafka_bootstrap") if bus == "kafka" else "",
        env=env,
    )
    running = Cluster(options)
    with running:
        yield running
        eventschema.assert_published(running.events.events())  # verdicts and quarantine
    assert running.exit_codes == dict.fromkeys(running.exit_codes, 0), running.exit_codes


def test_gtube_is_refused_before_the_250_and_never_sent(cluster: Cluster) -> None:
    rcpt = "victim@alpha.test"
    data = client.message(SENDER, [rcpt], "Hello", GTUBE + "\n")
    sent = client.submit(cluster, SENDER, [rcpt], data)
    assert sent.code == 550 and sent.reply.startswith(b"5.7.1 Message refused by content")
    reference = sent.reply.decode().rpartition("(ref ")[2].rstrip(")")
    [scanned] = cluster.events.wait_for(EventKind.SCANNED, message_id=reference)
    assert scanned.classification == "rejected" and "GTUBE" in scanned.symbols
    [rejected] = cluster.events.wait_for(EventKind.REJECTED, message_id=reference)
    assert rejected.check == "rspamd"
    assert all(rcpt not in m.rcpt_tos for m in cluster.sink("alpha.test").messages)


def test_a_clean_message_is_delivered_signed_with_its_verdict_in_an_event(
    cluster: Cluster,
) -> None:
    rcpt = "clean@alpha.test"
    data = client.message(SENDER, [rcpt], "Lunch", "See you at one.\n")
    sent = client.submit(cluster, SENDER, [rcpt], data)
    assert sent.code == 250, sent.reply
    cluster.events.wait_for(EventKind.DELIVERED, recipient=rcpt, timeout=60)
    [scanned] = cluster.events.events(sent.message_id, None, [EventKind.SCANNED])
    assert scanned.classification == "clean" and scanned.figures["score"] < 2.0
    assert scanned.detail.startswith(f"ref {sent.message_id}; action no action")
    assert cluster.events.counts(sent.message_id) == Counter(
        accepted=1, scanned=1, signed=1, delivered=1
    )
    [copy] = [m for m in cluster.sink("alpha.test").messages if rcpt in m.rcpt_tos]
    assert client.verify_dkim(copy.data, cluster.ports.dns) == [True, True]


def test_a_quarantined_message_waits_for_its_release_then_is_delivered(
    cluster: Cluster,
) -> None:
    rcpt = "held@beta.test"
    data = client.message(SENDER, [rcpt], "FREE MONEY NOW CLICK HERE TODAY", "Really.\n")
    sent = client.submit(cluster, SENDER, [rcpt], data)
    assert sent.code == 250, sent.reply
    [scanned] = cluster.events.wait_for(EventKind.SCANNED, message_id=sent.message_id)
    assert scanned.classification == "quarantined" and "SUBJ_ALL_CAPS" in scanned.symbols
    log = cluster.workdir / "quarantine.log"
    listed = run_command(["quarantine", "list"], cluster.config_path, log).stdout
    assert sent.message_id in listed
    assert cluster.events.counts(sent.message_id) == Counter(scanned=1)  # held: nothing sent

    out = run_command(
        ["quarantine", "release", sent.message_id, "--why", "e2e: the customer's newsletter"],
        cluster.config_path,
        log,
    ).stdout
    assert out.splitlines()[-1] == "1 released, 0 left as they were"
    cluster.events.wait_for(EventKind.DELIVERED, recipient=rcpt, timeout=60)
    assert cluster.events.counts(sent.message_id) == Counter(
        scanned=1, quarantine=1, signed=1, delivered=1
    )
    [copy] = [m for m in cluster.sink("beta.test").messages if rcpt in m.rcpt_tos]
    assert client.body_of(copy.data) == b"Really.\r\n"
    assert client.verify_dkim(copy.data, cluster.ports.dns) == [True, True]

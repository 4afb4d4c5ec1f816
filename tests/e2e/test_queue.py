"""The queue tools end to end: ``postline queue ...`` run as processes against a running
cluster, on Kafka (stage processes) and on the embedded bus (``postline run``). Deferred mail
waits an hour here (``retry.first_delay``), so only an operator's action brings it back
within a test:

- a deferred message is in ``queue list``, ``summary`` and ``show``; ``queue bounce`` ends it
  and the bouncer sends its sender a DSN saying so, without suppressing the recipient;
- a deferred domain is flushed and delivered on its second attempt;
- a suspended domain's mail is held without an attempt, listed as suspended, and delivered
  on its first attempt after ``queue resume``;
- an unknown message id or domain is refused by name, with exit code 1.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.queue.actions import OPERATOR
from shared.wire.records import EventKind
from testing import eventschema
from testing.harness import client
from testing.harness.cluster import Cluster, ClusterOptions
from testing.harness.processes import ProcessFailed, run_command

SENDER = "app@sender.test"
RETRY_LATER = "451 4.3.0 Try again later"


@pytest.fixture(
    scope="module",
    params=[pytest.param("kafka", marks=pytest.mark.kafka), "embedded"],
)
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """A cluster whose deferred mail waits an hour."""
    env = {
        "POSTLINE__DELIVERER__RETRY__FIRST_DELAY": "1h",
        "POSTLINE__DELIVERER__QUEUE_SNAPSHOT_INTERVAL": "0.5s",
    }
    if request.param == "kafka":
        options = ClusterOptions(
            bus="kafka",
            shape="split",
            workdir=tmp_path_factory.mktemp("queue-kafka"),
            kafka_bootstrap=request.getfixturevalue("kafka_bootstrap"),
            env=env,
        )
    else:
        options = ClusterOptions(
            bus="embedded", shape="run", workdir=tmp_path_factory.mktemp("queue-embedded"), env=env
        )
    with Cluster(options) as running:
        yield running
        eventschema.assert_published(running.events.events())  # the operator's events too
    assert running.exit_codes == dict.fromkeys(running.exit_codes, 0), running.exit_codes


def queue(cluster: Cluster, *args: str) -> str:
    """``postline queue ARGS`` as a process; its output (fails on a non-zero exit)."""
    log = cluster.workdir / f"queue-{args[0]}.log"
    return run_command(["queue", *args], cluster.config_path, log).stdout


def send(cluster: Cluster, rcpt: str, subject: str) -> str:
    data = client.message(SENDER, [rcpt], subject, "Hello from the queue test.\n")
    sent = client.submit(cluster, SENDER, [rcpt], data)
    assert sent.code == 250 and sent.message_id, sent
    return sent.message_id


def test_a_message_bounced_from_the_queue_gets_its_sender_a_dsn(cluster: Cluster) -> None:
    rcpt = "stuck@flaky.test"
    cluster.sink("flaky.test").script_rcpt(rcpt, *[RETRY_LATER] * 5)
    message_id = send(cluster, rcpt, "Queue scenario one")
    cluster.events.wait_for(EventKind.DEFERRED, message_id=message_id, timeout=60)
    listing = queue(cluster, "list", "--domain", "flaky.test")
    assert message_id in listing and rcpt in listing and RETRY_LATER in listing
    summary = queue(cluster, "summary")
    assert "flaky.test" in summary
    shown = queue(cluster, "show", message_id[:12])
    assert "Subject: Queue scenario one" in shown and "attempts    1" in shown

    done = queue(cluster, "bounce", message_id, "--why", "cancelled by the operator test")
    assert f"bounce of message:{message_id}" in done
    [bounced] = cluster.events.wait_for(EventKind.BOUNCED, message_id=message_id, timeout=60)
    assert bounced.classification == OPERATOR
    assert str(bounced.reply) == "550 5.0.0 bounced by the operator: cancelled by the operator test"
    sink = cluster.sink("sender.test")
    marker = f"X-Postline-Id: {message_id}".encode()

    def dsn_arrived(_: object) -> bool:
        return any(marker in m.data for m in sink.messages)

    cluster.events.wait(dsn_arrived, 60, f"a DSN about {message_id}")
    [dsn] = [m for m in sink.messages if marker in m.data]
    assert b"report-type=delivery-status" in dsn.data
    assert b"bounced by the operator" in dsn.data
    assert b"Subject: Queue scenario one" in dsn.data
    assert rcpt not in cluster.suppressions()  # the recipient did nothing wrong
    with pytest.raises(ProcessFailed, match="no queued message"):
        queue(cluster, "show", message_id)  # it left the queue with its bounce


def test_a_deferred_domain_is_flushed_and_delivered(cluster: Cluster) -> None:
    rcpt = "later@beta.test"
    cluster.sink("beta.test").script_rcpt(rcpt, RETRY_LATER)
    message_id = send(cluster, rcpt, "Queue scenario two")
    cluster.events.wait_for(EventKind.DEFERRED, message_id=message_id, timeout=60)
    assert "beta.test" in queue(cluster, "summary", "--by", "domain")
    queue(cluster, "flush", "domain:beta.test")
    [delivered] = cluster.events.wait_for(EventKind.DELIVERED, message_id=message_id, timeout=60)
    assert delivered.attempt == 2
    assert [m for m in cluster.sink("beta.test").messages if rcpt in m.rcpt_tos]


def test_a_suspended_domain_is_held_and_sent_after_the_resume(cluster: Cluster) -> None:
    queue(cluster, "suspend", "domain:alpha.test", "--why", "their MX is migrating")
    assert "domain:alpha.test" in queue(cluster, "suspended")
    rcpt = "held@alpha.test"

    # Every replica follows postline.control; the first message after the suspension waits.
    message_id = send(cluster, rcpt, "Queue scenario three")

    def listed_as_suspended(_: object) -> bool:
        return message_id in queue(cluster, "list", "--domain", "alpha.test")

    cluster.events.wait(listed_as_suspended, 60, f"{message_id} held")
    assert "suspended: domain:alpha.test" in queue(cluster, "list", "--domain", "alpha.test")
    assert not cluster.events.events(message_id, kinds=[EventKind.DELIVERED, EventKind.DEFERRED])
    queue(cluster, "resume", "domain:alpha.test")
    [delivered] = cluster.events.wait_for(EventKind.DELIVERED, message_id=message_id, timeout=60)
    assert delivered.attempt == 1  # a hold is not an attempt
    assert "no suspension in force" in queue(cluster, "suspended")


def test_unknown_ids_and_domains_are_refused_by_name(cluster: Cluster) -> None:
    with pytest.raises(ProcessFailed, match=r"(?s)exited 1.*no queued message '0123456789ab'"):
        queue(cluster, "bounce", "0123456789ab")
    with pytest.raises(ProcessFailed, match=r"nothing queued for domain:nowhere\.test"):
        queue(cluster, "flush", "domain:nowhere.test")
    with pytest.raises(ProcessFailed, match="not suspended"):
        queue(cluster, "resume", "domain:nowhere.test")
    with pytest.raises(ProcessFailed, match="expected KIND:NAME"):
        queue(cluster, "suspend", "nowhere.test")

"""Broker faults under a steady load through every stage process, with the books counted.

Each scenario starts from a healthy cluster (topics with replication 3 and min.insync 2,
as ``postline topics create --replication-factor 3`` makes them), lets the load settle,
injects its fault, keeps the load on, then stops it, waits for the mail and counts
(``testing.harness.faults``). What must hold after every fault: nothing accepted is lost
or missing from ``postline.submitted``, nothing is duplicated between topics, and nothing
good is dead-lettered. Only a deliverer killed mid-delivery may repeat a delivery at the
sink (at least once to the outside world). How long the accepted rate took to come back is
measured and reported, not asserted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.wire.topics import SUBMITTED
from testing.harness.brokers import BrokerCluster
from testing.harness.faults import FaultRun, Report

WARMUP = 8.0  # seconds of load before the fault: the baseline rate
AFTER = 20.0  # seconds of load after the last repair: the recovery


def assert_books(report: Report, *, sink_duplicates: bool = False) -> None:
    """What every scenario must show (see the module docstring)."""
    c = report.counts
    assert c.accepted > 0, report.as_dict()
    assert c.lost == 0, report.as_dict()
    assert c.missing_on_bus == 0, report.as_dict()
    assert c.dup_topics == 0, c.dup_detail
    assert c.dead_letters == 0, report.as_dict()
    if not sink_duplicates:
        assert c.dup_sink == 0, report.as_dict()
    # Recovery times are measured and reported (the table), never asserted: they depend on
    # the machine's load, the books do not.


@pytest.mark.cluster_ci
def test_leader_killed_and_restarted(
    brokers: BrokerCluster, tmp_path: Path, record: Callable[[Report], None]
) -> None:
    with FaultRun("kill-leader", brokers, tmp_path) as run:
        run.sleep(WARMUP)
        node = brokers.most_leaders(run.wire(SUBMITTED.name))
        run.mark("fault", f"kill -9 node {node} (leads most of postline.submitted)")
        brokers.kill(node)
        run.sleep(15)
        brokers.start(node)
        run.mark("repair", f"node {node} restarted")
        run.sleep(AFTER)
        report = run.finish()
    record(report)
    assert_books(report)


def test_leader_killed_and_left_down(
    brokers: BrokerCluster, tmp_path: Path, record: Callable[[Report], None]
) -> None:
    """Two brokers of three still meet min.insync.replicas 2: the cluster goes on."""
    with FaultRun("kill-leader-stays-down", brokers, tmp_path) as run:
        run.sleep(WARMUP)
        node = brokers.most_leaders(run.wire(SUBMITTED.name))
        run.mark("fault", f"kill -9 node {node}, left down")
        brokers.kill(node)
        run.sleep(15 + AFTER)
        report = run.finish()
    record(report)
    assert_books(report)


def test_rolling_restart(
    brokers: BrokerCluster, tmp_path: Path, record: Callable[[Report], None]
) -> None:
    """Strimzi's rolling update: each broker in turn stopped (SIGTERM, a controlled
    shutdown), started, and the next one only once every partition is in sync again."""
    with FaultRun("rolling-restart", brokers, tmp_path) as run:
        run.sleep(WARMUP)
        for node in (1, 2, 3):
            run.mark("fault", f"SIGTERM node {node}")
            brokers.terminate(node)
            brokers.start(node)
            run.mark("repair", f"node {node} restarted")
            brokers.wait_in_sync()
            run.mark("note", f"in sync after node {node}")
        run.sleep(AFTER)
        report = run.finish()
    record(report)
    assert_books(report)


def test_two_brokers_down(
    brokers: BrokerCluster, tmp_path: Path, record: Callable[[Report], None]
) -> None:
    """With two of three brokers gone no write can reach min.insync.replicas 2 (and the
    controllers lose their quorum): ingest answers 451, never 250; stages wait and
    dead-letter nothing; everything resumes when one broker returns."""
    with FaultRun("two-brokers-down", brokers, tmp_path) as run:
        run.sleep(WARMUP)
        first, second = 2, 3
        run.mark("fault", f"kill -9 nodes {first} and {second}")
        brokers.kill(first)
        brokers.kill(second)
        down_at = run.marks[-1].at
        run.sleep(25)
        # From here on the node replicates again, before start() returns (it waits until the
        # node serves clients): a 250 after this moment has two copies, as promised.
        restarting_at = time.time()
        brokers.start(first)
        run.mark("repair", f"node {first} restarted (two of three)")
        run.sleep(10)
        brokers.start(second)
        run.mark("repair", f"node {second} restarted")
        run.sleep(AFTER)
        report = run.finish()
        attempts = run.attempts()
    record(report)
    assert_books(report)
    # Sent a second after both died and answered before one was started again: never a 250.
    during = [a for a in attempts if a.sent_at > down_at + 1 and a.replied_at < restarting_at]
    assert during, "no message was tried during the outage"
    assert all(a.code != 250 for a in during), [a for a in during if a.code == 250][:3]
    assert any(a.code == 451 for a in during), {a.code for a in during}


def test_broker_paused_longer_than_the_session_timeouts(
    brokers: BrokerCluster, tmp_path: Path, record: Callable[[Report], None]
) -> None:
    """SIGSTOP freezes a broker with its connections open (a network pause) past the
    broker's session with the controllers (9 s) and the groups' sessions (10 s): it is
    fenced, leadership moves; on SIGCONT it comes back as a zombie that must not accept
    writes, and the group coordinator or transaction coordinator it was moves back."""
    with FaultRun("pause-broker", brokers, tmp_path) as run:
        run.sleep(WARMUP)
        node = brokers.coordinator(run.group("postline-signer"))
        run.mark("fault", f"SIGSTOP node {node} (the signer group's coordinator)")
        brokers.pause(node)
        run.sleep(25)
        brokers.resume(node)
        run.mark("repair", f"SIGCONT node {node}")
        run.sleep(AFTER + 10)
        report = run.finish()
    record(report)
    assert_books(report)


def test_stage_killed_during_a_rebalance(
    brokers: BrokerCluster, tmp_path: Path, record: Callable[[Report], None]
) -> None:
    """Two signers and two deliverers; a third of each joins (a rebalance begins) and one
    of the old ones is killed -9 while its group is rebalancing, then restarted under its
    own name. The deliverer killed mid-delivery may deliver again what it had in flight."""
    with FaultRun(
        "kill-stage-in-rebalance", brokers, tmp_path, replicas={"signer": 2, "deliverer": 2}
    ) as run:
        run.sleep(WARMUP)
        for stage in ("signer", "deliverer"):
            victim = f"{stage}-2"
            offset = run.log_size(victim)
            run.held_down.add(victim)
            joined = run.cluster.add_replica(stage)

            def rebalancing(name: str = victim, since: int = offset) -> bool:
                return "revoking" in run.log_since(name, since)

            run.wait_until(rebalancing, 30, f"{victim} to see the rebalance {joined} started")
            run.mark("fault", f"kill -9 {victim} while {joined} joins")
            run.cluster.kill(victim)
            run.sleep(5)
            run.cluster.start_again(victim)
            run.held_down.discard(victim)
            run.mark("repair", f"{victim} restarted")
            run.sleep(10)
        run.sleep(AFTER)
        report = run.finish()
    record(report)
    assert_books(report, sink_duplicates=True)

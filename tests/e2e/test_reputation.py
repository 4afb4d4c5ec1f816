"""Reputation management end to end on Kafka, five stage processes: a tenant whose mail
hard-bounces past the pause level is paused by the reputation stage and ingest refuses its
next message, while another tenant sends on; ``postline tenant resume`` lets it send again;
the reputation stage restarted mid-stream counts every outcome once.

Tenants send through the relay listener (a trusted network): ingest gives the mail to the
tenant owning the verified sender domain. Their domains have no DKIM keys, so the signer
sends unsigned (``allow_unsigned``); DSNs back to the senders are off (their domains have no
MX here).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import msgspec
import pytest

from shared import tenant_admin
from shared.bus.base import Bus
from shared.reputation import total
from shared.wire.records import Event, EventKind, Reputation, SendingDomain, Tenant
from shared.wire.topics import REPUTATION
from testing import eventschema
from testing.harness import client
from testing.harness.cluster import Cluster, ClusterOptions
from testing.harness.processes import run_command

pytestmark = pytest.mark.kafka

MIN_MESSAGES = 8
NO_USER = "550 5.1.1 No such user here"


@pytest.fixture(scope="module")
def cluster(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    options = ClusterOptions(
        bus="kafka",
        workdir=tmp_path_factory.mktemp("reputation"),
        kafka_bootstrap=kafka_bootstrap,
        env={
            "POSTLINE__REPUTATION__MIN_MESSAGES": str(MIN_MESSAGES),
            "POSTLINE__SIGNER__ALLOW_UNSIGNED": "true",
            "POSTLINE__BOUNCER__DSN__ENABLED": "false",
        },
    )
    with Cluster(options) as running:
        yield running
        eventschema.assert_published(running.events.events())  # the decisions' events too
    assert running.exit_codes == dict.fromkeys(running.exit_codes, 0), running.exit_codes


def add_tenant(cluster: Cluster, tenant: str) -> None:
    domain = SendingDomain(name=f"{tenant}.test", verified=True, verified_at=time.time())

    async def add(bus: Bus) -> None:
        await tenant_admin.add(bus, tenant, by="test")
        await tenant_admin.update(
            bus, tenant, lambda t: msgspec.structs.replace(t, domains=(domain,)), by="test"
        )

    cluster.call(add)


def tenant(cluster: Cluster, tenant_id: str) -> Tenant:
    async def get(bus: Bus) -> Tenant:
        return await tenant_admin.get(bus, tenant_id)

    return cluster.call(get)


def reputation(cluster: Cluster, key: str) -> Reputation | None:
    async def read(bus: Bus) -> dict[bytes, bytes]:
        return await bus.read_table(REPUTATION.name)

    value = cluster.call(read).get(key.encode())
    return REPUTATION.decode(value) if value is not None else None


def send(cluster: Cluster, tenant_id: str, rcpt: str) -> client.Sent:
    sender = f"app@{tenant_id}.test"
    data = client.message(sender, [rcpt], "Reputation", "Hello.\n")
    return client.submit(cluster, sender, [rcpt], data, relay=True)


def until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def accepted_as(
    cluster: Cluster, tenant_id: str, ids: list[str] | None = None
) -> Callable[[], bool]:
    """A probe: one more message from the tenant's domain; true once ingest gave it to the
    tenant (ingest follows the tenant table: the first probes may precede it). The id of the
    message that was the tenant's goes in ``ids``."""
    probes = iter(range(1000))

    def probe() -> bool:
        # Short local parts: the VERP return path carries the recipient, and the sink (as
        # RFC 5321 4.5.3.1.1 allows) refuses a return path whose local part passes 64 octets.
        sent = send(cluster, tenant_id, f"p{next(probes)}@alpha.test")
        assert sent.code == 250, sent
        [accepted] = cluster.events.wait_for(EventKind.ACCEPTED, message_id=sent.message_id)
        if accepted.tenant == tenant_id and ids is not None:
            ids.append(sent.message_id)
        return accepted.tenant == tenant_id

    return probe


def decisions(cluster: Cluster, tenant_id: str, classification: str) -> list[Event]:
    return [
        e
        for e in cluster.events.events(kinds=[EventKind.REPUTATION])
        if e.tenant == tenant_id and e.classification == classification
    ]


def test_a_bouncing_tenant_is_paused_at_ingest_and_resumed(cluster: Cluster) -> None:
    for tenant_id in ("bad", "good"):
        add_tenant(cluster, tenant_id)
        until(accepted_as(cluster, tenant_id), f"ingest never gave mail to {tenant_id}")
    reject = cluster.sink("reject.test")
    for i in range(MIN_MESSAGES):
        rcpt = f"gone{i}@reject.test"
        reject.script_rcpt(rcpt, NO_USER)
        assert send(cluster, "bad", rcpt).code == 250
    cluster.events.wait(
        lambda _: bool(decisions(cluster, "bad", "paused")), 60, "the tenant's pause"
    )
    [paused] = decisions(cluster, "bad", "paused")
    assert paused.scope == "tenant" and paused.stage == "reputation"
    assert re.fullmatch(r"hard bounce rate \d+\.\d% over 24h \(\d+ of \d+\)", paused.detail)
    bad = tenant(cluster, "bad")
    assert (bad.status.state, bad.status.by, bad.status.why) == (
        "paused",
        "reputation",
        paused.detail,
    )

    # Ingest follows the tenant table: the tenant's next message is refused, naming why.
    refused: list[client.Sent] = []

    def refused_at_ingest() -> bool:
        sent = send(cluster, "bad", "after@alpha.test")
        refused.append(sent)
        return sent.code == 550

    until(refused_at_ingest, "ingest kept accepting the paused tenant's mail")
    assert refused[-1].reply.decode() == f"5.7.1 sending paused for this account: {paused.detail}"
    assert send(cluster, "good", "fine@alpha.test").code == 250  # the other tenant sends on

    # `postline tenant resume` (the real command): the reputation stage starts the tenant's
    # window afresh (recovered) and ingest accepts its mail again.
    log = cluster.workdir / "resume.log"
    run_command(["tenant", "resume", "bad"], cluster.config_path, log, cluster.options.env)
    cluster.events.wait(
        lambda _: bool(decisions(cluster, "bad", "recovered")), 60, "the tenant's recovery"
    )
    until(lambda: send(cluster, "bad", "again@alpha.test").code == 250, "still refused")
    assert decisions(cluster, "good", "paused") == []


def test_a_restart_mid_stream_counts_every_outcome_once(cluster: Cluster) -> None:
    add_tenant(cluster, "steady")
    ids: list[str] = []
    until(accepted_as(cluster, "steady", ids), "ingest never gave mail to steady")
    sent = [send(cluster, "steady", f"s{i}@beta.test") for i in range(10)]
    cluster.restart("reputation")  # SIGTERM: the batch in hand commits, the rest waits
    sent += [send(cluster, "steady", f"t{i}@beta.test") for i in range(10)]
    assert all(s.code == 250 for s in sent)
    ids += [s.message_id for s in sent]

    def all_delivered(events: list[Event]) -> bool:
        done = {e.message_id for e in events if e.kind is EventKind.DELIVERED}
        return set(ids) <= done

    cluster.events.wait(all_delivered, 60, "every message delivered")

    def counted() -> int:
        record = reputation(cluster, "tenant|steady")
        return total(record.buckets).sent if record is not None else 0

    until(lambda: counted() >= len(ids), "the reputation stage did not count them all")
    assert counted() == len(ids)  # neither lost nor counted twice across the restart

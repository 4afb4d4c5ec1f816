"""The HTTP sending API end to end on the real Kafka broker: an application posts to
ingest's API, the four stage processes carry the message, and the sink MX hosts receive it.

- a message sent by the API arrives DKIM-signed (both signatures checked with dkimpy against
  the keys the harness DNS server publishes);
- a request retried with the same Idempotency-Key gets the first answer and sends once;
- a batch of 500 is accepted in one request: 500 ids, every one on postline.submitted;
- a send_at a few seconds ahead is held in a retry tier and delivered after it, never before
  (checked by the order of the events' times against the send-at, no other clock);
- a send-at message deleted with ``postline queue delete`` is never delivered: a later
  scheduled message to the same domain, which waits behind it in the same tier partition,
  is delivered and the deleted one is not.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from shared import tenant_access, tenant_admin
from shared.bus.base import Bus
from shared.wire.records import EventKind, SendingDomain
from shared.wire.topics import SUBMITTED
from testing import eventschema
from testing.harness import client
from testing.harness.cluster import Cluster, ClusterOptions
from testing.harness.processes import run_command
from testing.smtpsink import free_port

pytestmark = pytest.mark.kafka

TENANT = "apiapp"
SENDER = "app@sender.test"  # the harness makes DKIM keys for sender.test


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Api:
    """The cluster and its API's URL and key."""

    cluster: Cluster
    url: str
    key: str

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Answer:
        request = urllib.request.Request(
            self.url + path,
            data=msgspec.json.encode(body),
            headers={
                "Authorization": f"Bearer {self.key}",
                "Content-Type": "application/json",
                **(headers or {}),
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return Answer(response.status, dict(response.headers), _json(response.read()))
        except urllib.error.HTTPError as error:
            return Answer(error.code, dict(error.headers), _json(error.read()))


def _json(raw: bytes) -> Any:
    return msgspec.json.decode(raw) if raw else None


async def _tenant_with_key(bus: Bus) -> str:
    await tenant_admin.add(bus, TENANT, name="API app", by="test")
    await tenant_admin.update(
        bus,
        TENANT,
        lambda t: msgspec.structs.replace(
            t, domains=(SendingDomain(name="sender.test", verified=True),)
        ),
        by="test",
    )
    _, key = await tenant_access.add_api_key(bus, TENANT, name="e2e", by="test")
    return key


@pytest.fixture(scope="module")
def api(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A Kafka cluster with the API on a free port and a tenant with a key."""
    port = free_port()
    options = ClusterOptions(
        bus="kafka",
        shape="split",
        workdir=tmp_path_factory.mktemp("api-kafka"),
        kafka_bootstrap=kafka_bootstrap,
        extra_config={"api": f'[ingest.api]\nlisten = "127.0.0.1:{port}"\n'},
        env={"POSTLINE__DELIVERER__QUEUE_SNAPSHOT_INTERVAL": "0.5s"},
    )
    with Cluster(options) as cluster:
        running = Api(cluster, f"http://127.0.0.1:{port}", cluster.call(_tenant_with_key))
        # Ingest follows postline.tenants: the key works once its replica has read it.
        deadline = time.monotonic() + 30
        while running.post("/v1/messages", {}).status == 401:
            assert time.monotonic() < deadline, "ingest never learnt the API key"
            time.sleep(0.1)
        yield running
        eventschema.assert_published(cluster.events.events())  # the API's events too
    assert cluster.exit_codes == dict.fromkeys(cluster.exit_codes, 0), cluster.exit_codes


def message(rcpt: str, subject: str, **fields: Any) -> dict[str, Any]:
    return {
        "from": f"App <{SENDER}>",
        "to": [rcpt],
        "subject": subject,
        "text": f"{subject}: hello from the API test.\n",
        **fields,
    }


def copies(cluster: Cluster, domain: str, subject: str) -> list[bytes]:
    """What the sink of ``domain`` received with ``subject`` (the whole line)."""
    marker = f"Subject: {subject}\r\n".encode()
    return [m.data for m in cluster.sink(domain).messages if marker in m.data]


def rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def test_a_message_sent_by_the_api_arrives_dkim_signed(api: Api) -> None:
    answer = api.post("/v1/messages", message("ann@alpha.test", "API scenario one"))
    assert answer.status == 202, answer.body
    message_id = answer.body["id"]
    [delivered] = api.cluster.events.wait_for(
        EventKind.DELIVERED, message_id=message_id, timeout=60
    )
    assert delivered.tenant == TENANT
    [copy] = copies(api.cluster, "alpha.test", "API scenario one")
    assert client.dkim_algorithms(copy) == ["rsa-sha256", "ed25519-sha256"]
    assert client.verify_dkim(copy, api.cluster.ports.dns) == [True, True]
    assert answer.body["message_id"].encode() in copy  # the Message-ID the answer named
    assert b"with HTTP" in copy  # ingest's Received field says how it came


def test_a_retry_with_the_same_idempotency_key_sends_once(api: Api) -> None:
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    body = message("bob@beta.test", "API scenario two")
    first = api.post("/v1/messages", body, key)
    again = api.post("/v1/messages", body, key)
    assert (first.status, again.status) == (202, 202)
    assert again.body == first.body and again.headers.get("Idempotent-Replayed") == "true"
    api.cluster.events.wait_for(EventKind.DELIVERED, message_id=first.body["id"], timeout=60)
    # A later message to the same address, sent after the retry: once it is delivered, a
    # second copy of the first would have been accepted and delivered too.
    later = api.post("/v1/messages", message("bob@beta.test", "API sentinel two"))
    api.cluster.events.wait_for(EventKind.DELIVERED, message_id=later.body["id"], timeout=60)
    assert len(copies(api.cluster, "beta.test", "API scenario two")) == 1
    accepted = api.cluster.events.events(kinds=[EventKind.ACCEPTED])
    assert [e.message_id for e in accepted].count(first.body["id"]) == 1


def test_a_send_at_is_held_and_delivered_after_it_not_before(api: Api) -> None:
    send_at = time.time() + 8
    body = message("carol@beta.test", "API scenario three", send_at=rfc3339(send_at))
    answer = api.post("/v1/messages", body)
    assert answer.status == 202, answer.body
    message_id = answer.body["id"]
    kept = datetime.fromisoformat(answer.body["send_at"]).timestamp()
    assert abs(kept - send_at) < 1e-3
    [delivered] = api.cluster.events.wait_for(
        EventKind.DELIVERED, message_id=message_id, timeout=90
    )
    events = api.cluster.events.events(message_id)
    [accepted] = [e for e in events if e.kind is EventKind.ACCEPTED]
    [signed] = [e for e in events if e.kind is EventKind.SIGNED]
    assert accepted.at < kept and signed.at < kept  # taken in and signed at once
    assert "held until" in signed.detail
    attempts = [e for e in events if e.kind in (EventKind.DELIVERED, EventKind.DEFERRED)]
    assert attempts == [delivered] and delivered.attempt == 1
    assert delivered.at >= kept  # not before its time
    assert len(copies(api.cluster, "beta.test", "API scenario three")) == 1


def test_a_send_at_message_deleted_from_the_queue_is_never_delivered(api: Api) -> None:
    cluster = api.cluster
    at = time.time()
    doomed = api.post(
        "/v1/messages", message("dan@alpha.test", "API deleted four", send_at=rfc3339(at + 20))
    )
    assert doomed.status == 202, doomed.body
    doomed_id = doomed.body["id"]
    # It is in the deferred queue's index (put there by the signer) once signed.
    cluster.events.wait_for(EventKind.SIGNED, message_id=doomed_id, timeout=60)
    log = cluster.workdir / "queue-delete.log"
    listed = run_command(["queue", "list", "--domain", "alpha.test"], cluster.config_path, log)
    assert doomed_id in listed.stdout
    done = run_command(["queue", "delete", doomed_id], cluster.config_path, log)
    assert f"delete of message:{doomed_id}" in done.stdout
    cluster.events.wait_for(EventKind.DELETED, message_id=doomed_id, timeout=60)
    # Scheduled after it to the same domain: it waits behind it in the same tier partition.
    sentinel = api.post(
        "/v1/messages", message("eve@alpha.test", "API sentinel four", send_at=rfc3339(at + 25))
    )
    cluster.events.wait_for(EventKind.DELIVERED, message_id=sentinel.body["id"], timeout=90)
    kinds = {e.kind for e in cluster.events.events(doomed_id)}
    assert EventKind.DELIVERED not in kinds and EventKind.DEFERRED not in kinds
    assert len(copies(cluster, "alpha.test", "API sentinel four")) == 1
    assert copies(cluster, "alpha.test", "API deleted four") == []


async def _submitted_ids(bus: Bus) -> set[str]:
    return {msg.key.decode() async for msg in bus.read_to_end(SUBMITTED.name) if msg.key}


def test_a_batch_of_500_is_accepted_in_one_request(api: Api) -> None:
    batch = {
        "messages": [
            message(f"batch{i}@beta.test", f"API batch {i}", tags={"batch": "e2e"})
            for i in range(500)
        ]
    }
    answer = api.post("/v1/messages/batch", batch)
    assert answer.status == 202, answer.body
    assert (answer.body["accepted"], answer.body["refused"]) == (500, 0)
    results = answer.body["results"]
    assert [r["index"] for r in results] == list(range(500))
    ids = {r["id"] for r in results}
    assert len(ids) == 500 and all(r["status"] == 202 for r in results)
    assert ids <= api.cluster.call(_submitted_ids)  # durable on the bus before the 202

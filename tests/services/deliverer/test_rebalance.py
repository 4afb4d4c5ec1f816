"""A rebalance takes partitions away: their queued jobs are dropped, not delivered twice.

Found by ``bench/bench_scaleout.py --join-under-load``: a second deliverer joining while the
first held a full window made the first one go on delivering the revoked partitions' queued
jobs while the new owner delivered them again from the committed offset (926 duplicate
copies out of 6,000 messages).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

from prometheus_client import CollectorRegistry

from services.deliverer.config import DelivererConfig
from services.deliverer.metrics import DelivererMetrics
from services.deliverer.mx import MxResolver
from services.deliverer.pool import Connector
from services.deliverer.queue import SHED_STOPPING, DomainQueue, Job, JobResult
from services.deliverer.shaping import Shapers
from shared.bus.base import BusMessage, TopicPartition
from shared.runtime.consume import Item
from shared.runtime.watermark_loop import Ticket
from shared.wire.records import Delivery, new_id

KEPT = TopicPartition("postline.outbound", 1)
REVOKED = TopicPartition("postline.outbound", 0)


@contextlib.asynccontextmanager
async def _activity() -> AsyncIterator[None]:
    yield


def _job(tp: TopicPartition, offset: int) -> Job:
    delivery = Delivery(
        message_id=new_id(),
        delivery_id=new_id(),
        domain="dest.test",
        mail_from="b@bounces.test",
        rcpt_to=(f"r{offset}@dest.test",),
        data=b"Subject: x\r\n\r\nx\r\n",
    )
    message = BusMessage(tp.topic, tp.partition, offset, None, None, 0.0)
    # The queue reports through ``done``, never through the ticket's loop, in this test.
    return Job(delivery, Ticket(cast(Any, None), Item(delivery, message), 0.0))


async def test_drop_forgets_queued_jobs_of_revoked_partitions_only() -> None:
    cfg = DelivererConfig(nameservers=["127.0.0.1:9"])
    metrics = DelivererMetrics(CollectorRegistry())
    finished: list[tuple[Job, JobResult]] = []
    queue = DomainQueue(
        "dest.test",
        cfg,
        Connector(cfg, MxResolver(cfg.nameservers, metrics=metrics), metrics),
        patterns=[],
        done=lambda job, result: finished.append((job, result)),
        activity=_activity,
        shapers=Shapers(cfg),
        spawn=lambda coro, name: asyncio.create_task(coro, name=name),
    )
    jobs = [_job(REVOKED, n) for n in range(3)] + [_job(KEPT, n) for n in range(2)]
    for job in jobs:  # no await in between: every job is still queued, none in flight
        assert queue.offer(job) == ""

    assert queue.drop({REVOKED}) == 3
    assert queue.size == 2

    await queue.stop()  # sheds what is left: only the kept partition's jobs report back
    assert [(job.tp, job.offset) for job, _ in finished] == [(KEPT, 0), (KEPT, 1)]
    assert all(result.shed == SHED_STOPPING for _, result in finished)
    assert queue.idle

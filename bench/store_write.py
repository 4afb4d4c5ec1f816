"""The store's write rate: events/s ``shared.store.writer.write_batch`` puts into PostgreSQL.

    python bench/store_write.py [--dsn postgresql://postline@127.0.0.1:25432/postline]
        [--events 200000] [--batch 500 --batch 1000 --batch 2000]

For each batch size, a fresh database (``testing.postgres``, dropped after) is migrated and
``--events`` generated events are written batch after batch, as the store stage does: a
message's accepted event, then delivered (most), deferred, bounced, opened and clicked ones,
with an asynchronous bounce (no tenant) now and then, over 7 tenants, 5 campaigns and 50
recipient domains. The events are encoded before the clock starts; what is timed is the
writer alone (rows, attribution, the one transaction). Python's CPU time is printed beside
the wall time: the rest is the database's. Writes ``bench/results/store_write.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from shared.store.writer import write_batch
from shared.wire.records import Event, EventKind, SmtpReply
from testing.postgres import fresh_database
from testing.store import AT, store_database
from testing.store import event as stored_event

RESULTS = Path(__file__).resolve().parent / "results" / "store_write.json"
OK = SmtpReply(code=250, enhanced="2.0.0", text="2.0.0 Ok: queued as 4Xyz")
KINDS = [EventKind.DELIVERED] * 6 + [
    EventKind.DEFERRED,
    EventKind.BOUNCED,
    EventKind.OPENED,
    EventKind.CLICKED,
]


def generate(count: int) -> list[tuple[bytes, Event]]:
    """``count`` events shaped like a relay's stream (see the module docstring)."""
    out: list[tuple[bytes, Event]] = []
    n = 0
    while len(out) < count:
        mid = f"{n:032x}"
        tenant = f"t{n % 7}"
        tags = {"campaign": f"c{n % 5}"}
        at = AT + n * 0.05
        out.append(
            stored_event(
                EventKind.ACCEPTED,
                mid,
                at=at,
                tenant=tenant,
                sender=f"news@{tenant}.example",
                tags=tags,
                recipients=3,
                subject=f"Offer {n % 100} for you",
            )
        )
        for r in range(3):
            kind = KINDS[(n + r) % len(KINDS)]
            domain = f"d{(n + r) % 50}.example"
            fields: dict[str, Any] = {
                "at": at + 1 + r,
                "recipient": f"r{n}-{r}@{domain}",
                "domain": domain,
                "provider": "google" if r == 0 else "other",
            }
            if kind is EventKind.BOUNCED and n % 2:  # the bouncer's: no tenant, no sender
                fields |= {"classification": "hard", "reason": "userunknown"}
            else:
                fields |= {"tenant": tenant, "sender": f"news@{tenant}.example", "tags": tags}
                fields |= {"reply": OK} if kind is EventKind.DELIVERED else {}
            out.append(stored_event(kind, mid, **fields))
        n += 1
    return out[:count]


async def run(dsn: str, events: list[tuple[bytes, Event]], batch: int) -> dict[str, Any]:
    """Write ``events`` in batches of ``batch`` into a fresh database; the figures."""
    async with fresh_database(dsn) as url, store_database(url) as db:
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(events), batch):
            await write_batch(db, events[start : start + batch])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        stored = int(await db.fetchval("SELECT count(*) FROM events"))
    assert stored == len(events), f"{stored} stored of {len(events)}"
    return {
        "batch": batch,
        "events": len(events),
        "seconds": round(wall, 2),
        "events_per_second": round(len(events) / wall),
        "python_cpu_seconds": round(cpu, 2),
    }


async def main() -> None:
    """Parse the arguments, run each batch size, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dsn",
        default=os.environ.get(
            "POSTLINE_TEST_POSTGRES", "postgresql://postline@127.0.0.1:25432/postline"
        ),
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, action="append")
    args = parser.parse_args()
    events = generate(args.events)
    rows = [await run(args.dsn, events, size) for size in args.batch or [500, 1000, 2000]]
    for row in rows:
        print(
            f"batch {row['batch']:>5}: {row['events']} events in {row['seconds']}s = "
            f"{row['events_per_second']} events/s (Python CPU {row['python_cpu_seconds']}s)"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps({"machine": platform.machine(), "cpus": os.cpu_count(), "runs": rows}, indent=2)
        + "\n"
    )


if __name__ == "__main__":
    asyncio.run(main())

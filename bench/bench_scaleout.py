"""Scale-out (``make bench-scaleout``): two signers and two deliverers share the work.

    python bench/bench_scaleout.py --kafka 127.0.0.1:29092 [--messages 6000] [--domains 16]

Two clusters on Kafka, one after the other: one signer and one deliverer process, then two
of each (same consumer groups, so Kafka splits the partitions of ``postline.submitted`` and
``postline.outbound`` between the replicas). Each cluster first accepts the whole load with
only ingest and the bouncer running (a backlog on ``postline.submitted``, so ingest's SMTP
acceptance is not what is measured), then starts the signers and deliverers and times the
drain into the sink. Reported per cluster: the drain rate (from process start, after
readiness, and first-to-last receipt), the messages each replica handled (its own
``/metrics``), the partitions each was assigned (its log), CPU per message per process, and
the Message-IDs the sink received more than once or never (both must be none). Written to
``bench/results/scaleout.json``. Recipient domains are many (16 by default) because
``postline.outbound`` is keyed by domain: one domain is one partition is one deliverer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load import SENDER, LoadResult, LoadSpec, message, run_load
from bench.measure import broker_pid
from bench.procstats import Meter
from bench.sink import Sink
from bench.stack import STAGES, Stack, StackOptions
from shared.config import KafkaConfig
from shared.wire.records import ClientInfo, Submission, new_id
from shared.wire.topics import SUBMITTED

RESULTS = Path(__file__).parent / "results"


def run_shape(args: argparse.Namespace, replicas: int, workdir: Path) -> dict[str, Any]:
    """One cluster with ``replicas`` signers and deliverers draining a backlog; its figures."""
    domains = tuple(f"d{i}.bench" for i in range(args.domains))
    options = StackOptions(
        workdir=workdir / f"x{replicas}",
        kafka=args.kafka,
        domains=domains,
        replicas={**dict.fromkeys(STAGES, 1), "signer": replicas, "deliverer": replicas},
        # One signing process per signer replica: a replica is what one pod/core adds.
        env={"POSTLINE__SIGNER__WORKERS": str(args.signer_workers)},
        deferred=("signer", "deliverer") if args.join_under_load else (),
    )
    with Stack(options) as stack:
        sink = stack.sinks[0]
        if args.join_under_load:
            # The backlog through SMTP first; replicas start (and join one by one) after.
            spec = LoadSpec(
                port=stack.ports.relay,
                sessions=args.sessions,
                messages=args.messages,
                domains=domains,
            )
            load = asyncio.run(run_load(spec))
            started = time.time()
            stack.start_deferred()
            meter = Meter(meter_roots(stack, args.kafka))  # from readiness: startup excluded
            meter.start()
        else:
            wait_split(stack, replicas)  # every replica owns its share before any work
            meter = Meter(meter_roots(stack, args.kafka))
            meter.start()
            started = time.time()
            load = asyncio.run(inject(stack, args.messages, domains))
        complete = wait_unique(sink, load, timeout=300)
        meter.stop()
        figures = drain_figures(sink, load, started)
        figures.update(complete=complete, replicas=replicas, accepted=load.accepted)
        figures["processes"] = meter.report(load.accepted)
        figures["restarted"] = meter.restarted()
        figures["handled"] = per_replica(stack)
        figures["assignments"] = {
            name: stack.assignments(name)
            for name in stack.process_names()
            if name.startswith(("signer", "deliverer"))
        }
    return figures


def meter_roots(stack: Stack, kafka: str) -> dict[str, int]:
    """The process trees to meter: every process but ingest (idle here), and the broker."""
    roots = {name: pid for name, pid in stack.pids().items() if name != "ingest"}
    broker = broker_pid(kafka)
    if broker:
        roots["kafka"] = broker
    return roots


def wait_split(stack: Stack, replicas: int, timeout: float = 60.0) -> None:
    """Poll the logs until every signer and deliverer owns its share of the main topic."""
    want = {"signer": "postline.submitted", "deliverer": "postline.outbound"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = []
        for name in stack.process_names():
            topic = want.get(name.split("-")[0])
            if topic:
                lines = [x for x in stack.assignments(name) if f" {topic} " in f"{x} "]
                counts.append(len(lines[0].rsplit(" ", 1)[1].split(",")) if lines else 0)
        if counts and all(n == 12 // replicas for n in counts):
            return
        time.sleep(0.2)
    raise TimeoutError("the consumer groups did not split the partitions in time")


async def inject(stack: Stack, count: int, domains: tuple[str, ...]) -> LoadResult:
    """Publish ``count`` Submissions onto ``postline.submitted`` as ingest would, fast."""
    from shared.bus.kafka import KafkaBus  # noqa: PLC0415 (aiokafka only here)

    bus = KafkaBus(
        KafkaConfig(bootstrap=stack.options.kafka, topic_prefix=stack.topic_prefix),
        instance=f"bench-inject-{new_id()[:8]}",
    )
    await bus.start()
    out = LoadResult(started_at=time.time())
    try:
        for first in range(0, count, 500):
            batch = []
            for n in range(first, min(first + 500, count)):
                rcpt = f"r{n}@{domains[n % len(domains)]}"
                mid = f"inject{first}.{n}.{new_id()[:8]}@bench.example"
                batch.append(
                    SUBMITTED.out(
                        Submission(
                            id=new_id(),
                            received_at=time.time(),
                            client=ClientInfo(ip="127.0.0.1", helo="bench", listener="relay"),
                            mail_from=SENDER,
                            rcpt_to=(rcpt,),
                            data=message(mid, [rcpt], 5 * 1024),
                        )
                    )
                )
                out.accepted_at[mid] = time.time()
                out.recipients[mid] = 1
            await bus.publish(batch)
            out.accepted += len(batch)
    finally:
        await bus.close()
    return out


def wait_unique(sink: Sink, load: LoadResult, timeout: float) -> bool:
    """Wait until every accepted Message-ID reached the sink (duplicates do not count)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sink.count() >= load.accepted:
            seen = {r.message_id for r in sink.receipts()}
            if all(m in seen for m in load.accepted_at):
                return True
        time.sleep(0.5)
    return False


def drain_figures(sink: Sink, load: LoadResult, started: float) -> dict[str, Any]:
    """Drain rate from the sink's receipts (from the start of the backlog to the last
    receipt, and first to last receipt); missing and duplicated messages."""
    receipts = [r for r in sink.receipts() if r.message_id in load.accepted_at]
    seen = Counter(r.message_id for r in receipts)
    first = min((r.at for r in receipts), default=started)
    last = max((r.at for r in receipts), default=started)
    return {
        "delivered": len(receipts),
        "missing_messages": len(load.accepted_at) - len(seen),
        "duplicate_recipients": sum(n - 1 for n in seen.values()),
        "drain_s": round(last - started, 2),
        "drain_per_s": round(len(seen) / max(last - started, 1e-6), 1),
        "drain_per_s_first_to_last": round(len(seen) / max(last - first, 1e-6), 1),
    }


def per_replica(stack: Stack) -> dict[str, float]:
    """Messages signed / recipients delivered so far, per signer and deliverer process."""
    out = {}
    for name in stack.process_names():
        if name.startswith("signer"):
            out[name] = stack.metric(name, "postline_signer_messages_total", result="signed")
        elif name.startswith("deliverer"):
            out[name] = stack.metric(name, "postline_deliverer_attempts_total", result="delivered")
    return out


def main() -> int:
    """Both shapes, printed and saved."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kafka", default=os.environ.get("POSTLINE_TEST_KAFKA", "127.0.0.1:29092"))
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--domains", type=int, default=16)
    parser.add_argument("--signer-workers", type=int, default=1)
    parser.add_argument(
        "--join-under-load",
        action="store_true",
        help="backlog through SMTP first, then start the replicas (they join one by one)",
    )
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="postline-scaleout-") as tmp:
        for replicas in (1, 2):
            results.append(run_shape(args, replicas, Path(tmp)))
            r = results[-1]
            print(
                f"\n{replicas} signer(s) + {replicas} deliverer(s) draining {r['accepted']}: "
                f"{r['drain_per_s']}/s ({r['drain_s']} s), "
                f"{r['drain_per_s_first_to_last']}/s first to last receipt; "
                f"missing {r['missing_messages']}, duplicates {r['duplicate_recipients']}"
            )
            for name, count in r["handled"].items():
                cpu = r["processes"][name]["cpu_ms_per_msg"]
                print(f"  {name:<12} handled {count:>6.0f}  cpu {cpu} ms/msg")
                for line in r["assignments"].get(name, []):
                    if "-retry" not in line:  # the retry tiers split the same way
                        print(f"      {line}")
    RESULTS.mkdir(exist_ok=True)
    output = RESULTS / ("scaleout-join.json" if args.join_under_load else "scaleout.json")
    output.write_text(
        json.dumps(
            {"params": vars(args), "loadavg_after": os.getloadavg(), "runs": results}, indent=2
        )
        + "\n"
    )
    print(f"\nwritten to {output}; load average {os.getloadavg()}")
    ok = all(
        r["complete"] and not r["duplicate_recipients"] and not r["restarted"] for r in results
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

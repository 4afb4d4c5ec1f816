"""A stage-like child process for the crash test: consume, publish, commit; maybe SIGKILL.

Reads ``--input`` in group ``--group``; for every batch it publishes one output per input
(same key and value) on ``--output`` and commits the input offsets in one transaction. With
``--kill-at-batch K`` it kills itself with SIGKILL on batch K after publishing and before
committing. It exits 0 once the group's committed offsets cover ``--total`` inputs.

Run as a script: ``python tests/shared/bus/txn_child.py ...`` (it puts the repository root
on ``sys.path`` itself).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from shared.bus.base import Consumer
from shared.wire.topics import OutRecord
from tests.shared.bus.buses import BusTarget


async def committed_total(consumer: Consumer) -> int:
    """How many inputs the group has committed, over all assigned partitions."""
    return sum([await consumer.committed(tp) for tp in consumer.assignment()])


async def run(args: argparse.Namespace) -> None:
    """Consume until ``args.total`` inputs are committed."""
    bus = BusTarget.from_args(args).open(args.instance)
    await bus.start()
    consumer = bus.consumer(args.group, [args.input])
    await consumer.start()
    batch_no = 0
    try:
        while await committed_total(consumer) < args.total:
            messages = await consumer.fetch(max_records=args.batch_size, timeout=1.0)
            if not messages:
                continue
            batch_no += 1
            async with consumer.transaction() as txn:
                for message in messages:
                    await txn.publish(OutRecord(args.output, message.key, message.value))
                txn.commit_offsets({m.tp: m.offset + 1 for m in messages})
                if batch_no == args.kill_at_batch:
                    # Outputs are published inside the open transaction; die before commit.
                    os.kill(os.getpid(), signal.SIGKILL)
    finally:
        await consumer.stop()
        await bus.close()


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    BusTarget.add_arguments(parser)
    parser.add_argument("--instance", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--total", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--kill-at-batch", type=int, default=0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

"""What scanning one message costs rspamd: CPU milliseconds per message and messages/s.

    deploy/local/rspamd.sh up
    python bench/rspamd_cpu.py [--url http://127.0.0.1:21333] [--messages 2000] [--concurrency 10]

POSTs ``--messages`` distinct messages of about 4 KB (multipart text and HTML with links,
the headers an application's mail has) to rspamd's ``/checkv2`` with ``--concurrency``
requests in flight, the envelope in request headers as ingest sends it (``User`` set: an
authenticated, outbound sender). The CPU time is rspamd's own: user + system time of its
main process and every child (normal and hs_helper workers) from /proc, before and after the
measured run; a short warm-up run comes first. The figures say nothing about the network
checks, which the local instance has switched off (deploy/local/rspamd.sh).
Prints the figures and writes them to bench/results/rspamd.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.procstats, run as a file

from bench.procstats import Meter

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "rspamd.json"
SCRIPT = ROOT / "deploy" / "local" / "rspamd.sh"

_PARAGRAPH = (
    "Your order has shipped and is on its way. You can follow the parcel at any time from "
    "your account page; the carrier updates the status a few times a day. If anything is "
    "missing or damaged, reply to this message and our support team will help you.\r\n"
)


def message(n: int, size: int = 4 * 1024) -> bytes:
    """Message ``n``: about ``size`` bytes, multipart/alternative, distinct from every other."""
    text = (_PARAGRAPH * (size // 2 // len(_PARAGRAPH) + 1))[: size // 2]
    html = "".join(f"<p>{line}</p>\r\n" for line in text.split("\r\n") if line)
    return (
        "From: Shop Example <orders@shop.example.com>\r\n"
        f"To: Customer {n} <customer{n}@example.org>\r\n"
        f"Subject: Your order {100000 + n} has shipped\r\n"
        "Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
        f"Message-ID: <order-{n}.{os.getpid()}@shop.example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="b1"\r\n'
        "\r\n--b1\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{text}\r\nTrack it: https://shop.example.com/orders/{100000 + n}\r\n"
        "\r\n--b1\r\n"
        "Content-Type: text/html; charset=utf-8\r\n\r\n"
        f'<html><body>{html}<p><a href="https://shop.example.com/orders/{100000 + n}">'
        "Track your parcel</a></p></body></html>\r\n"
        "\r\n--b1--\r\n"
    ).encode()


async def scan(session: aiohttp.ClientSession, url: str, n: int, latencies: list[float]) -> str:
    """Scan message ``n``; its action."""
    headers = {
        "From": "orders@shop.example.com",
        "Rcpt": f"customer{n}@example.org",
        "IP": "192.0.2.10",
        "Helo": "app1.shop.example.com",
        "User": "shop-api",
        "Queue-Id": f"bench{n}",
    }
    start = time.perf_counter()
    async with session.post(f"{url}/checkv2", data=message(n), headers=headers) as response:
        body: dict[str, Any] = await response.json(content_type=None)
    latencies.append(time.perf_counter() - start)
    if response.status != 200:
        raise RuntimeError(f"rspamd answered {response.status}: {body}")
    return str(body.get("action"))


async def run(
    url: str, first: int, count: int, concurrency: int
) -> tuple[Counter[str], list[float]]:
    """Scan messages ``first`` .. ``first + count - 1``, ``concurrency`` at a time."""
    actions: Counter[str] = Counter()
    latencies: list[float] = []
    queue = iter(range(first, first + count))
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def worker() -> None:
            for n in queue:
                actions[await scan(session, url, n, latencies)] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return actions, latencies


def rspamd_pid(port: int) -> int:
    """The main process of deploy/local/rspamd.sh's instance on ``port``."""
    env = {**os.environ, "POSTLINE_RSPAMD_PORT": str(port)}
    status = subprocess.run(
        [str(SCRIPT), "status"], env=env, capture_output=True, text=True, check=False
    )
    found = re.search(r"running pid=(\d+)", status.stdout)
    if found is None:
        raise SystemExit(f"rspamd on port {port} is not running: {status.stdout.strip()}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    """Parse options, measure, print and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", default=os.environ.get("POSTLINE_TEST_RSPAMD", "http://127.0.0.1:21333")
    )
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--pid", type=int, help="rspamd's main process (default: rspamd.sh's)")
    args = parser.parse_args(argv)
    url = args.url.rstrip("/")
    pid = args.pid or rspamd_pid(int(url.rsplit(":", 1)[1]))

    asyncio.run(run(url, 0, args.warmup, args.concurrency))
    meter = Meter({"rspamd": pid})
    meter.start()
    start = time.perf_counter()
    actions, latencies = asyncio.run(run(url, args.warmup, args.messages, args.concurrency))
    elapsed = time.perf_counter() - start
    meter.stop()
    if meter.restarted():
        raise SystemExit("rspamd restarted during the run; figures discarded")

    latencies.sort()
    cpu = meter.report(args.messages)["rspamd"]
    figures = {
        "messages": args.messages,
        "concurrency": args.concurrency,
        "message_bytes": len(message(args.warmup)),
        "seconds": round(elapsed, 2),
        "messages_per_s": round(args.messages / elapsed, 1),
        "rspamd_cpu_s": cpu["cpu_s"],
        "rspamd_cpu_ms_per_msg": cpu["cpu_ms_per_msg"],
        "rspamd_peak_rss_mib": cpu["peak_rss_mib"],
        "latency_p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "latency_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
        "actions": dict(actions),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(figures, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

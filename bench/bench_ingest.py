"""Ingest benchmark (``make bench-ingest``): accepted 5 KB messages per second over SMTP and
over the HTTP sending API.

Starts ``postline ingest`` as its own process (a relay listener on 127.0.0.1, plaintext, the
client address trusted, so the figure is the SMTP + policy + hand-off path; and the sending
API on its own port) on the Kafka bus (``--kafka``) or the embedded bus, then drives it from
this process. ``--protocol smtp`` (the default): N concurrent asyncio SMTP sessions, once
with a new connection per message, once reusing connections. ``--protocol http``: N
concurrent API clients (``http_load.py``): the same message to ``/v1/messages/raw`` with a
kept-alive connection and with a new one per request, as JSON parts to ``/v1/messages``, and
100 per ``/v1/messages/batch`` request from two clients; the API key is a tenant's with
``bench.example`` verified. ``--protocol both`` runs both against the same ingest, side by
side. Reports accepted messages/s, the accept latency p50/p99 (SMTP: end of DATA to
``250``; HTTP: the request to its ``202``, a whole batch for the batch mode), and the ingest
process's CPU time per message (from /proc). ``--scanning URL``: ingest scans every message
with that rspamd (``[ingest.scanning]``), and rspamd's own CPU per message (its process tree,
from /proc) is reported too. Writes ``bench/results/ingest.json``.

    make bench-ingest BENCH_ARGS="--protocol both --messages 2000 --sessions 20"
    make rspamd-up && make bench-ingest BENCH_ARGS="--scanning http://127.0.0.1:21333"

Targets (issue 3): >= 800 accepted msg/s on one ingest process, p99 accept latency < 50 ms
at 20 sessions (SMTP).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import http_load
from bench.procstats import sample
from bench.rspamd_cpu import rspamd_pid
from shared import tenant_access, tenant_admin
from shared.bus.factory import open_bus
from shared.config import Config, load_config
from shared.wire.records import SendingDomain

RESULTS = Path(__file__).parent / "results" / "ingest.json"
POSTLINE = str(Path(sys.executable).parent / "postline")
TARGET_RATE = 800.0
TARGET_P99 = 0.050
_LINE = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n"


def message(size: int = 5 * 1024) -> bytes:
    """A 5 KB text message (dot-safe: no line starts with a dot)."""
    head = (
        b"From: Bench <app@bench.example>\r\nTo: rcpt@dest.example\r\n"
        b"Subject: Your weekly report\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    body = _LINE * ((size - len(head)) // len(_LINE) + 1)
    return head + body[: size - len(head) - 2] + b"\r\n"


@dataclass
class Result:
    """One run's figures."""

    mode: str
    sessions: int  # SMTP sessions or HTTP clients
    messages: int
    seconds: float
    rate: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_message: float
    failures: int
    protocol: str = "smtp"
    scanner_cpu_ms_per_message: float = 0.0  # rspamd's, with --scanning


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def reply(reader: asyncio.StreamReader) -> int:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed")
        if line[3:4] != b"-":
            return int(line[:3])


async def transaction(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> float | None:
    """One message; the accept latency, or ``None`` when it was not accepted."""
    writer.write(b"MAIL FROM:<app@bench.example>\r\nRCPT TO:<rcpt@dest.example>\r\nDATA\r\n")
    codes = [await reply(reader) for _ in range(3)]
    if codes != [250, 250, 354]:
        return None
    writer.write(data + b".\r\n")
    started = time.perf_counter()
    code = await reply(reader)
    return time.perf_counter() - started if code == 250 else None


async def session_loop(
    port: int, count: int, reuse: bool, data: bytes, *, latencies: list[float], failures: list[int]
) -> None:
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    for _ in range(count):
        if conn is None:
            conn = await asyncio.open_connection("127.0.0.1", port)
            await reply(conn[0])
            conn[1].write(b"EHLO bench.example\r\n")
            await reply(conn[0])
        latency = await transaction(*conn, data)
        if latency is None:
            failures.append(1)
        else:
            latencies.append(latency)
        if not reuse:
            conn[1].write(b"QUIT\r\n")
            await reply(conn[0])
            conn[1].close()
            conn = None
    if conn is not None:
        conn[1].write(b"QUIT\r\n")
        conn[1].close()


async def run_load(port: int, pid: int, sessions: int, total: int, reuse: bool) -> Result:
    data = message()
    latencies: list[float] = []
    failures: list[int] = []
    per_session = max(1, total // sessions)
    cpu_before, started = cpu_seconds(pid), time.perf_counter()
    await asyncio.gather(
        *(
            session_loop(port, per_session, reuse, data, latencies=latencies, failures=failures)
            for _ in range(sessions)
        )
    )
    seconds = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu_before
    return summary(
        "smtp, reuse" if reuse else "smtp, new connection",
        "smtp",
        sessions,
        latencies=latencies,
        accepted=len(latencies),
        failures=len(failures),
        seconds=seconds,
        cpu=cpu,
    )


async def run_http(
    api: http_load.Api, pid: int, mode: http_load.HttpMode, *, clients: int, total: int
) -> Result:
    cpu_before = cpu_seconds(pid)
    tally, seconds = await http_load.run(api, message(), mode, clients=clients, messages=total)
    cpu = cpu_seconds(pid) - cpu_before
    return summary(
        mode.name,
        "http",
        mode.clients or clients,
        latencies=tally.latencies,
        accepted=tally.accepted,
        failures=tally.failures,
        seconds=seconds,
        cpu=cpu,
    )


def summary(
    mode: str,
    protocol: str,
    sessions: int,
    *,
    latencies: list[float],
    accepted: int,
    failures: int,
    seconds: float,
    cpu: float,
) -> Result:
    """One run's figures: ``accepted`` messages in ``seconds``, latencies per request."""
    latencies.sort()
    done = len(latencies)

    def pct(p: float) -> float:
        return latencies[min(done - 1, int(p * done))] * 1000 if done else float("nan")

    return Result(
        mode=mode,
        sessions=sessions,
        messages=accepted,
        seconds=round(seconds, 3),
        rate=round(accepted / seconds, 1),
        p50_ms=round(pct(0.50), 2),
        p99_ms=round(pct(0.99), 2),
        cpu_ms_per_message=round(cpu / max(accepted, 1) * 1000, 3),
        failures=failures,
        protocol=protocol,
    )


def write_config(
    directory: Path,
    port: int,
    api_port: int,
    kafka: str | None,
    redis: str | None,
    *,
    scanning: str | None = None,
) -> Path:
    limits = f'[limits]\nbackend = "redis"\nredis_url = "{redis}"\n\n' if redis else ""
    bus = (
        f'[bus]\nkind = "kafka"\n\n[kafka]\nbootstrap = "{kafka}"\n'
        f'topic_prefix = "bench{os.getpid()}."\n'
        if kafka
        else f'[embedded]\npath = "{directory}/bus.db"\n'
    )
    path = directory / "postline.toml"
    path.write_text(
        bus + limits + f'\n[http]\nport = {free_port()}\n\n[log]\nlevel = "warning"\n\n'
        '[ingest]\nhostname = "bench.example"\ntrusted_networks = ["127.0.0.1/32"]\n\n'
        f'[[ingest.listeners]]\nname = "relay"\nport = {port}\nmode = "relay"\n\n'
        f'[ingest.api]\nlisten = "127.0.0.1:{api_port}"\n'
        + (f'\n[ingest.scanning]\nurl = "{scanning}"\n' if scanning else "")
    )
    return path


async def wait_port(port: int, deadline: float) -> None:
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def measure(
    port: int, api_port: int, key: str, pid: int, args: argparse.Namespace
) -> list[Result]:
    """Warm up, then one run per session count and mode, SMTP first, then HTTP."""
    results = []
    scanner = scanner_pid(args.scanning) if args.scanning else 0

    async def timed(run: Awaitable[Result]) -> Result:
        before = sample(scanner).cpu if scanner else 0.0
        result = await run
        if not scanner:
            return result
        cpu = sample(scanner).cpu - before
        per_message = round(cpu / max(result.messages, 1) * 1000, 3)
        return replace(result, scanner_cpu_ms_per_message=per_message)

    if args.protocol in ("smtp", "both"):
        await wait_port(port, time.monotonic() + 60)
        await run_load(port, pid, 4, 200, reuse=True)  # warm-up
        for sessions in args.sessions:
            for reuse in (False, True):
                results.append(await timed(run_load(port, pid, sessions, args.messages, reuse)))
    if args.protocol in ("http", "both"):
        api = http_load.Api(f"http://127.0.0.1:{api_port}", key)
        await http_load.wait_for_key(api, time.monotonic() + 60)
        await http_load.run(api, message(), http_load.MODES[0], clients=4, messages=200)  # warm
        for clients in args.sessions:
            for mode in http_load.MODES:
                run = run_http(api, pid, mode, clients=clients, total=args.messages)
                results.append(await timed(run))
    return results


def scanner_pid(url: str) -> int:
    """The main process of the local rspamd (``deploy/local/rspamd.sh``) serving ``url``."""
    return rspamd_pid(int(url.rstrip("/").rpartition(":")[2]))


def run_bench(args: argparse.Namespace) -> list[Result]:
    """Start ``postline ingest`` in its own process and measure it."""
    with tempfile.TemporaryDirectory() as tmp:
        port, api_port = free_port(), free_port()
        config = write_config(
            Path(tmp), port, api_port, args.kafka, args.limits_redis, scanning=args.scanning
        )
        if args.kafka:
            subprocess.run([POSTLINE, "--config", str(config), "topics", "create"], check=False)
        key = ""
        if args.limits_redis or args.protocol != "smtp":
            key = asyncio.run(add_tenant(load_config(config, {}), limited=bool(args.limits_redis)))
        proc = subprocess.Popen([POSTLINE, "--config", str(config), "ingest"])
        try:
            return asyncio.run(measure(port, api_port, key, proc.pid, args))
        finally:
            proc.terminate()
            proc.wait(30)


async def add_tenant(config: Config, *, limited: bool) -> str:
    """The sender's domain belongs to a tenant, with an API key (returned) for the HTTP runs;
    ``limited``: every message is checked against its limits (high enough never to refuse:
    what is measured is the cost of the check)."""
    bus = open_bus(config, owner=False)
    await bus.start()
    try:
        await tenant_admin.add(bus, "bench", by="bench")
        await tenant_admin.update(
            bus,
            "bench",
            lambda t: msgspec.structs.replace(
                t, domains=(SendingDomain(name="bench.example", verified=True),)
            ),
            by="bench",
        )
        if limited:
            limits = {
                "per_second": 1_000_000,
                "per_hour": 10**9,
                "per_day": 10**9,
                "per_month": 10**9,
            }
            await tenant_admin.set_fields(bus, "bench", limits=limits, by="bench")
        _, key = await tenant_access.add_api_key(bus, "bench", name="bench", by="bench")
        return key
    finally:
        await bus.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kafka", help="bootstrap of a Kafka broker (default: embedded bus)")
    parser.add_argument("--messages", type=int, default=4000, help="messages per run")
    parser.add_argument(
        "--sessions", type=int, nargs="+", default=[20, 50], help="SMTP sessions / API clients"
    )
    parser.add_argument(
        "--protocol",
        choices=("smtp", "http", "both"),
        default="smtp",
        help="SMTP sessions, the HTTP sending API, or both side by side (default: smtp)",
    )
    parser.add_argument(
        "--limits-redis",
        metavar="URL",
        help="check every message against a tenant's limits in this Redis (default: no limits)",
    )
    parser.add_argument(
        "--scanning",
        metavar="URL",
        help="scan every message with the rspamd at URL (make rspamd-up: http://127.0.0.1:21333)",
    )
    args = parser.parse_args()
    results = run_bench(args)
    head = f"{'mode':28} {'sess':>4} {'msg/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms/msg':>10}"
    print(head + (f" {'rspamd ms/msg':>13}" if args.scanning else ""))
    for r in results:
        scanner = f" {r.scanner_cpu_ms_per_message:>13}" if args.scanning else ""
        print(
            f"{r.mode:28} {r.sessions:>4} {r.rate:>8} {r.p50_ms:>8} {r.p99_ms:>8} "
            f"{r.cpu_ms_per_message:>10}{scanner}  failures={r.failures}"
        )
    print("(p50/p99: per request; a batch request carries 100 messages)")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "bus": "kafka" if args.kafka else "embedded",
                "limits": "redis" if args.limits_redis else "none",
                "scanning": args.scanning or "",
                "protocol": args.protocol,
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "targets": {"rate": TARGET_RATE, "p99_ms_at_20": TARGET_P99 * 1000},
                "results": [asdict(r) for r in results],
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

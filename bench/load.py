"""SMTP load generator: concurrent asyncio sessions submitting messages to one SMTP server.

    python bench/load.py --port 2525 --sessions 20 --messages 5000 --size 5120 \
        --rcpts 1 --domains d0.bench d1.bench [--new-connection] [--smtp-source]

Owns building the messages (each with a unique Message-ID, so a sink can match what it received
to what was accepted), driving N sessions with ESMTP PIPELINING (MAIL, RCPT..., DATA in one
write, RFC 2920), and measuring accepted msg/s and the accept latency: from the last byte of
the DATA block to the ``250`` (the time a client waits for "your mail is durable"). Each
message's acceptance time (epoch seconds) is kept by Message-ID for accept-to-delivered
latency. With ``--smtp-source`` Postfix's ``smtp-source`` drives the load instead (rate only:
it reports no latency). It does not start servers or sinks: ``bench_pipeline.py`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

_LINE = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n"
SENDER = "app@bench.example"


@dataclass(frozen=True)
class LoadSpec:
    """What to send and how."""

    host: str = "127.0.0.1"
    port: int = 25
    sessions: int = 20
    messages: int = 5000  # in total, spread evenly over the sessions
    size: int = 5 * 1024  # bytes of the whole message (headers + body)
    rcpts: int = 1  # recipients per message
    domains: tuple[str, ...] = ("d0.bench",)  # recipients cycle over these domains
    reuse: bool = True  # False: a new connection (and EHLO) per message
    sender: str = SENDER
    headers: str = ""  # extra header fields, CRLF-terminated (e.g. "Precedence: bulk\r\n")
    pause: float = 0.0  # seconds each session waits after a message (a paced load)


@dataclass
class LoadResult:
    """What the run measured."""

    sent: int = 0
    accepted: int = 0
    failed: int = 0
    seconds: float = 0.0
    started_at: float = 0.0  # epoch seconds
    latencies: list[float] = field(default_factory=list)  # seconds, accepted messages only
    accepted_at: dict[str, float] = field(default_factory=dict)  # Message-ID -> epoch seconds
    recipients: dict[str, int] = field(default_factory=dict)  # Message-ID -> recipient count
    errors: list[str] = field(default_factory=list)  # the first few failure replies

    @property
    def rate(self) -> float:
        """Accepted messages per second."""
        return self.accepted / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, float | int | list[str]]:
        """The figures as plain data (latencies in milliseconds)."""
        return {
            "sent": self.sent,
            "accepted": self.accepted,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "accepted_per_s": round(self.rate, 1),
            "accept_p50_ms": round(percentile(self.latencies, 0.50) * 1000, 2),
            "accept_p99_ms": round(percentile(self.latencies, 0.99) * 1000, 2),
            "errors": self.errors[:5],
        }


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def message(message_id: str, rcpts: list[str], size: int, headers: str = "") -> bytes:
    """A text message of about ``size`` bytes, dot-safe, ending in CRLF."""
    head = (
        f"From: Bench <{SENDER}>\r\nTo: {', '.join(rcpts)}\r\nSubject: Your weekly report\r\n"
        f"Message-ID: <{message_id}>\r\nMIME-Version: 1.0\r\n{headers}"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode()
    body = _LINE * (max(size - len(head), 0) // len(_LINE) + 1)
    return head + body[: max(size - len(head) - 2, 0)] + b"\r\n"


class _Session:
    """One SMTP client connection (opened lazily, reopened after QUIT when not reusing)."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def reply(self) -> str:
        """One (possibly multi-line) reply; its last line."""
        assert self.reader is not None
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("connection closed by the server")
            if line[3:4] != b"-":
                return line.decode(errors="replace").strip()

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.spec.host, self.spec.port)
        await self.reply()
        self.writer.write(b"EHLO load.bench.example\r\n")
        await self.reply()

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.write(b"QUIT\r\n")
            with contextlib.suppress(ConnectionError, OSError):
                await self.reply()
            self.writer.close()
        self.reader = self.writer = None

    async def send(self, rcpts: list[str], data: bytes) -> tuple[str, float]:
        """Submit one message; the final reply and the accept latency in seconds."""
        if self.writer is None:
            await self.open()
        assert self.writer is not None
        envelope = f"MAIL FROM:<{self.spec.sender}>\r\n" + "".join(
            f"RCPT TO:<{r}>\r\n" for r in rcpts
        )
        self.writer.write(envelope.encode() + b"DATA\r\n")  # RFC 2920 pipelined group
        replies = [await self.reply() for _ in range(len(rcpts) + 2)]
        if not replies[-1].startswith("354"):
            self.writer.write(b"RSET\r\n")
            await self.reply()
            return next((r for r in replies if r[:1] in "45"), replies[-1]), 0.0
        self.writer.write(data + b".\r\n")
        started = time.perf_counter()
        final = await self.reply()
        return final, time.perf_counter() - started


async def _session_loop(spec: LoadSpec, run: str, first: int, count: int, out: LoadResult) -> None:
    session = _Session(spec)
    try:
        for n in range(first, first + count):
            rcpts = [
                f"r{n}-{i}@{spec.domains[(n + i) % len(spec.domains)]}" for i in range(spec.rcpts)
            ]
            message_id = f"{run}.{n}@bench.example"
            out.sent += 1
            try:
                data = message(message_id, rcpts, spec.size, spec.headers)
                final, latency = await session.send(rcpts, data)
            except (ConnectionError, OSError) as exc:
                final, latency = f"connection: {exc}", 0.0
                session.writer = None
            if final.startswith("250"):
                out.accepted += 1
                out.latencies.append(latency)
                out.accepted_at[message_id] = time.time()
                out.recipients[message_id] = len(rcpts)
            else:
                out.failed += 1
                if len(out.errors) < 5:
                    out.errors.append(final)
            if not spec.reuse:
                await session.close()
            if spec.pause:
                await asyncio.sleep(spec.pause)
    finally:
        await session.close()


async def run_load(spec: LoadSpec) -> LoadResult:
    """Send ``spec.messages`` over ``spec.sessions`` concurrent sessions; the measured result."""
    run = uuid.uuid4().hex[:10]
    out = LoadResult(started_at=time.time())
    per, extra = divmod(spec.messages, spec.sessions)
    counts = [per + (1 if i < extra else 0) for i in range(spec.sessions)]
    firsts = [sum(counts[:i]) for i in range(spec.sessions)]
    started = time.perf_counter()
    await asyncio.gather(
        *(_session_loop(spec, run, f, c, out) for f, c in zip(firsts, counts, strict=True) if c)
    )
    out.seconds = time.perf_counter() - started
    return out


def run_smtp_source(spec: LoadSpec) -> LoadResult:
    """Drive the load with Postfix's ``smtp-source`` (accepted rate only, no latency)."""
    binary = shutil.which("smtp-source")
    if binary is None:
        raise FileNotFoundError("smtp-source is not installed (Debian package postfix)")
    per_session = max(1, spec.messages // spec.sessions)
    args = [binary, "-s", str(spec.sessions), "-m", str(per_session * spec.sessions)]
    args += ["-l", str(spec.size), "-r", str(spec.rcpts), "-f", spec.sender]
    args += ["-t", f"r@{spec.domains[0]}", "-M", "load.bench.example", "-N"]
    args += [] if not spec.reuse else ["-d"]
    args.append(f"{spec.host}:{spec.port}")
    out = LoadResult(started_at=time.time())
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    out.seconds = time.perf_counter() - started
    out.sent = per_session * spec.sessions
    out.accepted = out.sent if proc.returncode == 0 else 0
    out.failed = out.sent - out.accepted
    if proc.returncode:
        out.errors.append(proc.stderr.strip()[-300:])
    return out


def main() -> int:
    """Run one load against a server and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--size", type=int, default=5 * 1024)
    parser.add_argument("--rcpts", type=int, default=1)
    parser.add_argument("--domains", nargs="+", default=["d0.bench"])
    parser.add_argument("--new-connection", action="store_true", help="one connection per message")
    parser.add_argument("--smtp-source", action="store_true", help="use Postfix's smtp-source")
    args = parser.parse_args()
    spec = LoadSpec(
        host=args.host,
        port=args.port,
        sessions=args.sessions,
        messages=args.messages,
        size=args.size,
        rcpts=args.rcpts,
        domains=tuple(args.domains),
        reuse=not args.new_connection,
    )
    result = run_smtp_source(spec) if args.smtp_source else asyncio.run(run_load(spec))
    print(json.dumps(result.summary(), indent=2))
    return 0 if result.accepted else 1


if __name__ == "__main__":
    sys.exit(main())

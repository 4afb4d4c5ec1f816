"""The sink MX host of the benchmarks: accepts everything and records what it received.

Owns starting one sink process on ``host:port`` and reading back, per received transaction,
the receive time, the Message-ID and the recipient count, so a benchmark can count deliveries,
find duplicates and compute accept-to-delivered latency the same way for Postline and Postfix.

- Postfix's ``smtp-sink`` (C, a few microseconds per message) when installed, with ``-d``: one
  dump file per transaction; the file's modification time is the receive time.
- Otherwise an aiosmtpd sink in its own process (``python bench/sink.py HOST PORT LOG``) that
  appends one line per transaction to ``LOG``: ``epoch-time<TAB>message-id<TAB>recipients``.

It does not decide what the numbers mean: ``bench_pipeline.py`` does.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>]*)>", re.IGNORECASE | re.MULTILINE)
_DKIM = re.compile(rb"^DKIM-Signature:", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Receipt:
    """One transaction the sink accepted."""

    at: float  # epoch seconds
    message_id: str
    rcpts: int


class Sink:
    """One sink process; ``kind`` is ``smtp-sink`` or ``aiosmtpd``."""

    def __init__(self, host: str, port: int, workdir: Path, prefer_smtp_sink: bool = True) -> None:
        self.host, self.port = host, port
        self.dir = workdir / f"sink-{host}-{port}"
        self.kind = "smtp-sink" if prefer_smtp_sink and shutil.which("smtp-sink") else "aiosmtpd"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The sink's process id."""
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        """Start the process and wait until it accepts connections."""
        self.dir.mkdir(parents=True, exist_ok=True)
        # smtp-sink drops root privileges to nobody before writing: it must reach its folder
        # (only our own folders under the temporary directory are opened up).
        temp = Path(tempfile.gettempdir())
        for folder in self.dir.parents:
            if folder == temp or temp not in folder.parents:
                break
            folder.chmod(folder.stat().st_mode | 0o011)
        self.dir.chmod(0o777)
        if self.kind == "smtp-sink":
            args = ["smtp-sink", "-u", "nobody", "-d", f"{self.dir}/m.", "-h", "sink.bench"]
            args += ["-m", "1000", f"{self.host}:{self.port}", "1024"]
        else:
            args = [sys.executable, __file__, self.host, str(self.port), str(self.dir / "log")]
        self.proc = subprocess.Popen(args)
        wait_listening(self.host, self.port, time.monotonic() + 30)

    def stop(self) -> None:
        """Stop the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def reset(self) -> None:
        """Forget everything received so far (between two runs on the same sink)."""
        if self.kind == "smtp-sink":
            for entry in os.scandir(self.dir):
                os.unlink(entry.path)
        else:
            (self.dir / "log").write_bytes(b"")

    def count(self) -> int:
        """Transactions received so far (cheap enough to poll)."""
        if self.kind == "smtp-sink":
            return sum(1 for _ in os.scandir(self.dir))
        log = self.dir / "log"
        return log.read_bytes().count(b"\n") if log.exists() else 0

    def receipts(self) -> list[Receipt]:
        """Every transaction received so far."""
        if self.kind == "aiosmtpd":
            return [_parse_line(line) for line in (self.dir / "log").read_bytes().splitlines()]
        out = []
        for entry in os.scandir(self.dir):
            with open(entry.path, "rb") as fh:
                head = fh.read(8192)
            match = _MESSAGE_ID.search(head)
            rcpts = head.count(b"\nX-Rcpt-Args:")
            out.append(
                Receipt(entry.stat().st_mtime, match.group(1).decode() if match else "", rcpts)
            )
        return out

    def dkim_signed(self) -> int | None:
        """Transactions whose message carries a DKIM-Signature header (``None`` for the
        aiosmtpd sink, which keeps no message text)."""
        if self.kind == "aiosmtpd":
            return None
        signed = 0
        for entry in os.scandir(self.dir):
            with open(entry.path, "rb") as fh:
                signed += bool(_DKIM.search(fh.read(16384)))
        return signed


def _parse_line(line: bytes) -> Receipt:
    at, message_id, rcpts = line.decode().split("\t")
    return Receipt(float(at), message_id, int(rcpts))


def wait_listening(host: str, port: int, deadline: float) -> None:
    """Poll until ``host:port`` accepts a connection; ``TimeoutError`` at the deadline."""
    import socket  # noqa: PLC0415 (only the parent process needs it)

    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port}") from None
            time.sleep(0.05)


async def _serve(host: str, port: int, log_path: str) -> None:
    """The aiosmtpd sink: 250 to everything, one log line per transaction."""
    from aiosmtpd.smtp import SMTP, Envelope, Session  # noqa: PLC0415

    # Opened once for the process's life, before serving: nothing blocks the loop later.
    log = open(log_path, "ab", buffering=0)  # noqa: SIM115, ASYNC230

    class Handler:
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            data = bytes(envelope.original_content or b"")
            match = _MESSAGE_ID.search(data[:8192])
            message_id = match.group(1).decode() if match else ""
            log.write(f"{time.time()}\t{message_id}\t{len(envelope.rcpt_tos)}\n".encode())
            return "250 2.0.0 OK"

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Handler(), hostname="sink.bench"), host, port, backlog=1024
    )
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], int(sys.argv[2]), sys.argv[3]))

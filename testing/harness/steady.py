"""A steady SMTP load for fault scenarios: one message every 1/rate seconds, each recorded.

    load = SteadyLoad(port=cluster.ports.relay, rate=8.0, recipient=lambda n: f"c{n}@d1.test")
    load.start()
    ... inject faults ...
    attempts = load.stop()      # one Attempt per message: its reply, when, its queue id

The load is open: message ``n`` is due at ``start + n / rate`` whatever happened to the
previous ones, as mail keeps arriving at a relay whatever state it is in. ``workers``
threads, each with its own connection to the relay port (trusted network, no TLS: the load
must cost the machine little), take the next due message; when all of them are waiting on a
slow reply the next messages go out late, as soon as one is free. A message is tried once:
a 4xx is recorded, not retried, so "accepted" is exactly the set of ``250`` replies.

Blocking ``smtplib`` on threads on purpose: the harness's servers run on their own loop
thread, and the scenario's thread injects faults meanwhile.
"""

from __future__ import annotations

import re
import smtplib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_QUEUED = re.compile(rb"queued as ([0-9a-f]{32})")
SENDER = "app@sender.test"


@dataclass(frozen=True)
class Attempt:
    """One message and what ingest answered (``code`` -1: the connection failed)."""

    seq: int
    recipient: str
    sent_at: float  # epoch seconds, when DATA went out
    replied_at: float  # epoch seconds, when the reply came (or the failure)
    code: int
    reply: str
    message_id: str  # ingest's queue id ("" unless 250)


class SteadyLoad:
    """The load of the module docstring."""

    def __init__(
        self,
        *,
        port: int,
        rate: float,
        recipient: Callable[[int], str],
        workers: int = 8,
        host: str = "127.0.0.1",
        timeout: float = 60.0,
    ) -> None:
        self.port = port
        self.rate = rate
        self.recipient = recipient
        self.host = host
        self.timeout = timeout
        self._workers = workers
        self._lock = threading.Lock()
        self._next = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._attempts: list[Attempt] = []
        self.started_at = 0.0

    def start(self) -> None:
        """Start sending (returns at once)."""
        self.started_at = time.time()
        for index in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"load-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> list[Attempt]:
        """Stop sending; waits for the replies still due; every attempt, in order."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 10)
        with self._lock:
            return sorted(self._attempts, key=lambda a: a.seq)

    def snapshot(self) -> list[Attempt]:
        """The attempts answered so far."""
        with self._lock:
            return list(self._attempts)

    def _claim(self) -> int:
        with self._lock:
            seq = self._next
            self._next += 1
            return seq

    def _work(self) -> None:
        client: smtplib.SMTP | None = None
        while not self._stop.is_set():
            seq = self._claim()
            due = self.started_at + seq / self.rate
            if self._stop.wait(max(0.0, due - time.time())):
                break
            if client is None:
                client = self._connect()
            attempt, healthy = self._send(client, seq)
            with self._lock:
                self._attempts.append(attempt)
            if not healthy:
                _close(client)
                client = None
        if client is not None:
            _close(client)

    def _connect(self) -> smtplib.SMTP | None:
        try:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            client.ehlo("load.harness.test")
            return client
        except (OSError, smtplib.SMTPException):
            return None

    def _send(self, client: smtplib.SMTP | None, seq: int) -> tuple[Attempt, bool]:
        rcpt = self.recipient(seq)
        sent = time.time()
        if client is None:
            return Attempt(seq, rcpt, sent, sent, -1, "connect failed", ""), False
        data = (
            f"From: App <{SENDER}>\r\nTo: {rcpt}\r\nSubject: steady {seq}\r\n"
            f"Message-ID: <steady-{seq}-{sent:.3f}@sender.test>\r\n\r\n"
            f"Message {seq} of a steady load.\r\n"
        ).encode()
        try:
            code, reply = client.mail(SENDER)
            if code == 250:
                code, reply = client.rcpt(rcpt)
            if code == 250:
                code, reply = client.data(data)
            else:
                client.rset()
        except (OSError, smtplib.SMTPException) as exc:
            return Attempt(seq, rcpt, sent, time.time(), -1, repr(exc), ""), False
        found = _QUEUED.search(reply) if code == 250 else None
        text = reply.decode(errors="replace")
        message_id = found.group(1).decode() if found else ""
        return Attempt(seq, rcpt, sent, time.time(), code, text, message_id), True


def _close(client: smtplib.SMTP | None) -> None:
    if client is None:
        return
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()

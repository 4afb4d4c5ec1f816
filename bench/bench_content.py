"""What the content policy costs ingest per message (``policy/attachments.py`` and
``policy/signatures.py``), in microseconds of CPU, on the messages a relay sees most.

For each kind of message (plain text; text and HTML alternatives; a 100 KiB PDF invoice;
a zip of three files; a DKIM-signed text message) it times, over ``--messages`` copies,
the header parse ingest does anyway, the two content checks alone (default rules), and the
DATA checks (``policy/message.py``) before this policy and with it. Single process, no
I/O: the figure is the CPU the checks add to a message, not a throughput.

    python bench/bench_content.py --messages 10000
"""

from __future__ import annotations

import argparse
import io
import time
import zipfile
from collections.abc import Callable
from email import policy
from email.message import EmailMessage

from services.ingest.config import IngestConfig, ListenerConfig
from services.ingest.headers import parse
from services.ingest.policy import attachments, message, signatures
from services.ingest.policy.base import PolicyState, SessionInfo, Transaction, first_decision
from shared.suppressions import SuppressionTable

RELAY = ListenerConfig(name="relay", mode="relay")
TEXT = "Hello Ann,\n\nthank you for your order 12345. It ships tomorrow.\n\nThe shop\n" * 4


def _base(html: bool) -> EmailMessage:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = "shop@example.com"
    msg["To"] = "ann@dest.test"
    msg["Subject"] = "Your order"
    msg.set_content(TEXT)
    if html:
        msg.add_alternative(f"<html><body><p>{TEXT}</p></body></html>", subtype="html")
    return msg


def corpus() -> dict[str, bytes]:
    """The messages timed, by kind."""
    pdf = _base(html=True)
    pdf.add_attachment(
        b"%PDF-1.7\n" + bytes(range(256)) * 400, "application", "pdf", filename="invoice.pdf"
    )
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for name in ("report.pdf", "data.csv", "photos/1.jpg"):
            zipped.writestr(name, b"x" * 2000)
    bundle = _base(html=False)
    bundle.add_attachment(archive.getvalue(), "application", "zip", filename="bundle.zip")
    signed = b"DKIM-Signature: v=1; d=example.com; s=s1; h=from:to:subject; bh=x; b=y\r\n"
    return {
        "plain text": _base(html=False).as_bytes(),
        "text + html": _base(html=True).as_bytes(),
        "pdf 100KiB": pdf.as_bytes(),
        "zip (3 files)": bundle.as_bytes(),
        "dkim-signed text": signed + _base(html=False).as_bytes(),
    }


def per_message(run: Callable[[], object], count: int) -> float:
    """Microseconds per call of ``run``, best of three rounds of ``count``."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(count):
            run()
        best = min(best, time.perf_counter() - start)
    return best / count * 1e6


def main() -> None:
    """Print one line per kind of message."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    count = parser.parse_args().messages
    state = PolicyState.create(IngestConfig(listeners=[RELAY]), SuppressionTable())
    session = SessionInfo(ip="192.0.2.9", port=1234, listener=RELAY)
    txn = Transaction(id="m", mail_from="shop@example.com")
    ours = (signatures.signed_changes, attachments.attachments)
    before = tuple(c for c in message.CHECKS if c not in ours)
    print(f"{'message':<18} {'bytes':>7} {'parse':>7} {'content':>8} {'before':>7} {'after':>7}")
    for kind, data in corpus().items():
        msg = parse(data)
        assert message.run(state, session, txn, data, msg) is None, kind
        figures = (
            per_message(lambda: parse(data), count),  # noqa: B023
            per_message(lambda: first_decision(ours, state, session, txn, data, msg), count),  # noqa: B023
            per_message(lambda: first_decision(before, state, session, txn, data, msg), count),  # noqa: B023
            per_message(lambda: message.run(state, session, txn, data, msg), count),  # noqa: B023
        )
        print(f"{kind:<18} {len(data):>7} " + " ".join(f"{f:>7.1f}" for f in figures) + "  µs")


if __name__ == "__main__":
    main()

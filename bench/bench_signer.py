"""Signer benchmark (``make bench-signer``): DKIM signatures per second per core, 5 KB mail.

Signs the same kind of message the signer sees (a 5 KB text message with the usual headers)
in one process, so the figure is per core, for RSA-2048 and Ed25519 through
:func:`services.signer.dkim.sign_message` (dkimpy canonicalisation + OpenSSL key step), and
for reference stock ``dkim.sign`` with RSA (pure-Python RSA, key parsed per call); then the
signer's process pool on every usable CPU. Prints a table and writes
``bench/results/signer.json``.

Targets (issue 4): >= 1,500 RSA-2048 signatures/s per core, >= 2,500 Ed25519/s per core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import dkim

from services.signer.dkim import sign_message
from services.signer.keys import (
    KeyStore,
    SigningKey,
    generate_private_key,
    key_filename,
    write_private_key,
)
from services.signer.pool import KeyRef, SigningPool, SignJob, usable_cpus

DOMAIN = "bench.example"
TARGETS = {"rsa": 1500.0, "ed25519": 2500.0}
RESULTS = Path(__file__).parent / "results" / "signer.json"
_LINE = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n"


def message(size: int = 5 * 1024) -> bytes:
    """A realistic text message of about ``size`` bytes."""
    headers = (
        b"From: Bench Sender <sender@bench.example>\r\n"
        b"To: Recipient <rcpt@dest.example>\r\n"
        b"Subject: Your weekly report\r\n"
        b"Date: Fri, 27 Nov 2026 22:00:00 +0000\r\n"
        b"Message-ID: <bench-1@bench.example>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n"
    )
    body = _LINE * ((size - len(headers)) // len(_LINE) + 1)
    return headers + body[: size - len(headers)]


def rate(work: Callable[[], object], seconds: float) -> tuple[float, int]:
    """Calls per second of ``work`` over about ``seconds`` (after a short warm-up)."""
    for _ in range(20):
        work()
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(50):
            work()
        count += 50
    return count / (time.perf_counter() - started), count


def load_keys(directory: Path) -> dict[str, SigningKey]:
    """Generate one RSA-2048 and one Ed25519 key and load them the way the signer does."""
    write_private_key(directory, key_filename(DOMAIN, "r1", "rsa"), generate_private_key("rsa"))
    write_private_key(
        directory, key_filename(DOMAIN, "e1", "ed25519"), generate_private_key("ed25519")
    )
    store = KeyStore(directory)
    store.load()
    return {key.algorithm: key for key in store.signing_keys(DOMAIN, time.time())}


@dataclass(frozen=True)
class Case:
    """One measured case."""

    per_second: float
    count: int
    target: float | None = None
    unit: str = "signatures/s per core"


def measure(data: bytes, keys: dict[str, SigningKey], seconds: float) -> dict[str, Case]:
    """Every one-core case: each algorithm, dual signing, and stock dkimpy for reference."""
    stamp = int(time.time())
    cases: dict[str, Case] = {}
    for algorithm, key in keys.items():
        per_s, count = rate(partial(sign_message, data, [key], stamp), seconds)
        cases[algorithm] = Case(per_s, count, TARGETS[algorithm])
    both = [keys["rsa"], keys["ed25519"]]
    per_s, count = rate(partial(sign_message, data, both, stamp), seconds)
    cases["dual"] = Case(per_s, count, unit="messages/s per core (2 signatures each)")
    rsa_pem = keys["rsa"].path.read_bytes()
    stock = partial(
        dkim.sign, data, b"r1", DOMAIN.encode(), rsa_pem, canonicalize=(b"relaxed", b"relaxed")
    )
    per_s, count = rate(stock, min(seconds, 1.0))
    cases["stock_dkimpy_rsa"] = Case(per_s, count)
    return cases


async def measure_pool(data: bytes, store: KeyStore, seconds: float) -> Case:
    """RSA signatures/s of the signer's process pool on every usable CPU (all cores)."""
    pool = SigningPool(store, workers=max(2, usable_cpus()))
    pool.start()
    key = store.signing_keys(DOMAIN, time.time())[0]
    batch = [SignJob(data, (KeyRef.of(key),), int(time.time()))] * 200
    try:
        await pool.sign(batch)  # workers started and warm
        count = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            count += len(await pool.sign(batch))
        elapsed = time.perf_counter() - started
    finally:
        pool.close()
    return Case(count / elapsed, count, unit=f"RSA signatures/s, {pool.workers} worker processes")


def run(seconds: float) -> dict[str, Any]:
    """Measure every case; the result as written to the JSON file."""
    data = message()
    with tempfile.TemporaryDirectory() as tmp:
        keys = load_keys(Path(tmp))
        cases = measure(data, keys, seconds)
        store = KeyStore(Path(tmp))
        store.load()
        cases["pool_rsa_all_cores"] = asyncio.run(measure_pool(data, store, seconds))
    return {
        "message_bytes": len(data),
        "seconds_per_case": seconds,
        "python": platform.python_version(),
        "cpus": usable_cpus(),
        "results": {name: asdict(case) for name, case in cases.items()},
        "meets_targets": all(cases[alg].per_second >= t for alg, t in TARGETS.items()),
    }


def main() -> None:
    """Run, print a table, write the JSON file."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per case")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    report = run(args.seconds)
    print(f"DKIM signing, {report['message_bytes']} byte message, {report['cpus']} usable CPUs")
    print(f"{'case':<20} {'per second':>12} {'target':>8}  unit")
    for name, row in report["results"].items():
        target = "" if row["target"] is None else f"{row['target']:.0f}"
        print(f"{name:<20} {row['per_second']:>12,.0f} {target:>8}  {row['unit']}")
    print("meets targets:", "yes" if report["meets_targets"] else "NO")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

"""Signing on every core of the pod: a process pool that holds the parsed keys.

Why a process pool and not several consumers per pod: signing is pure CPU (canonicalisation
in Python, the key operation in OpenSSL) and the GIL keeps one process on one core. Several
consumer processes per pod would each need their own group membership, transactional
producer, suppression table, metrics port and (embedded bus) their own SQLite writer, which
the embedded bus cannot share between processes. With one consumer and a pool, a batch is
still ONE bus transaction (exactly-once is unchanged), the batch is split across the
workers, and Kubernetes scales pods on lag exactly as before; within a pod the pool scales
to the CPUs the pod may use (cgroup quota, not the node's core count).

Each worker process loads the key directory once (its own :class:`KeyStore`) and reloads it
only when the parent's key fingerprint changes. Tenants' keys, which the parent learns at
run time from ``postline.tenants``, reach the workers inside each job's :class:`KeyRef` as
their sealed bytes; a worker opens one with the KEK files (the same mounted Secret) the first
time it sees it and keeps it (``tenantkeys.py``). Only message bytes, key names and sealed
keys cross the process boundary, never a private key in the clear. ``workers = 1`` signs in
a thread of this process.

It does not decide what to sign with (``pipeline.py``) nor how (``dkim.py``).
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from services.signer.dkim import sign_message
from services.signer.keys import Algorithm, Fingerprint, KeyStore, SigningKey
from services.signer.tenantkeys import open_key
from shared.errors import ConfigError, SealError, SigningError, StageError
from shared.sealing import KeyRing, read_kek
from shared.wire.records import DkimKeyRecord

#: How often a worker checks that the stage process that started it is still alive.
ORPHAN_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class KeyRef:
    """Which key to sign with, by identity (workers look it up in their own store)."""

    domain: str
    selector: str
    algorithm: Algorithm
    tenant: str = ""  # a tenant's key: ...
    sealed: bytes = b""  # ... sealed as in its record, for workers that have not opened it

    @classmethod
    def of(cls, key: SigningKey) -> KeyRef:
        """The reference to ``key``."""
        return cls(key.domain, key.selector, key.algorithm, key.tenant, key.sealed)


@dataclass(frozen=True)
class SignJob:
    """One copy of a message to sign with some keys."""

    data: bytes
    keys: tuple[KeyRef, ...]
    timestamp: int
    expire_after: int = 0


@dataclass(frozen=True)
class SignOutcome:
    """The DKIM-Signature fields of a job, or why the message cannot be signed."""

    header: bytes = b""
    error: str = ""  # non-empty: a SigningError (the message, not the signer, is at fault)
    seconds: float = 0.0


def usable_cpus() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return max(1, min(cpus, math.ceil(int(quota) / int(period))))


def sign_jobs(
    store: KeyStore, jobs: Sequence[SignJob], keyring: KeyRing | None = None
) -> list[SignOutcome]:
    """Sign each job with keys from ``store`` (tenant keys opened with ``keyring`` when the
    store lacks them); raises :class:`StageError` for a missing key (the key set changed
    under us: the batch is retried)."""
    outcomes = []
    for job in jobs:
        keys = [_resolve(store, ref, keyring) for ref in job.keys]
        started = time.perf_counter()
        try:
            header = sign_message(job.data, keys, job.timestamp, job.expire_after)
        except SigningError as exc:
            outcomes.append(SignOutcome(error=str(exc)))
            continue
        outcomes.append(SignOutcome(header=header, seconds=time.perf_counter() - started))
    return outcomes


def _resolve(store: KeyStore, ref: KeyRef, keyring: KeyRing | None) -> SigningKey:
    key = store.get(ref.domain, ref.selector, ref.algorithm)
    if key is not None and key.sealed == ref.sealed:
        return key
    if ref.sealed and keyring is not None:
        record = DkimKeyRecord(
            selector=ref.selector,
            algorithm=ref.algorithm,
            public_key="",
            sealed_private_key=ref.sealed,
            created_at=0.0,
        )
        try:
            key = open_key(keyring, ref.tenant, ref.domain, record)
        except SealError as exc:
            raise StageError(f"tenant key {ref.selector}._domainkey.{ref.domain}: {exc}") from exc
        # A worker keeps what it opened (its store is its own): one unseal per key and worker.
        store.set_tenant_keys(ref.tenant, [*_others(store, ref), key])
        return key
    raise StageError(f"DKIM key {ref.selector}._domainkey.{ref.domain} not loaded")


def _others(store: KeyStore, ref: KeyRef) -> list[SigningKey]:
    """The tenant's keys a worker holds, but an older version of ``ref``'s selector."""
    return [
        key
        for key in store.tenant_keys()
        if key.tenant == ref.tenant
        and (key.domain, key.selector, key.algorithm) != (ref.domain, ref.selector, ref.algorithm)
    ]


class _Worker:
    """The state of one pool worker process: its own parsed keys and the KEKs."""

    store: KeyStore | None = None
    keyring: KeyRing | None = None


def _init_worker(directory: str, stage_pid: int, kek_files: tuple[str, ...] = ()) -> None:
    # ProcessPoolExecutor gives a worker no other place for state than its module; this
    # attribute is set only inside worker processes, never in the stage's process.
    _Worker.store = KeyStore(Path(directory))
    _Worker.store.load()
    _Worker.keyring = _read_keyring(kek_files)
    threading.Thread(target=_exit_with_parent, args=(stage_pid,), daemon=True).start()


def _read_keyring(kek_files: tuple[str, ...]) -> KeyRing | None:
    if not kek_files:
        return None
    try:
        keks = [read_kek(Path(path), "secrets.kek_file", path) for path in kek_files]
    except ConfigError:
        return None  # the parent checked the files; a tenant key then fails its batch, named
    return KeyRing(keks[0], tuple(keks[1:]))


def _exit_with_parent(stage_pid: int) -> None:
    # A SIGKILLed stage cannot shut its pool down; without this its workers would live on
    # as orphans (outside a container, where PID 1 dying does not end them). The PID comes
    # from the stage: a worker still starting up when the stage died already has a new
    # parent by the time it gets here.
    while os.getppid() == stage_pid:
        time.sleep(ORPHAN_CHECK_SECONDS)
    os._exit(1)


def _run_chunk(fingerprint: Fingerprint, jobs: Sequence[SignJob]) -> list[SignOutcome]:
    store = _Worker.store
    assert store is not None, "worker not initialised"
    if store.fingerprint != fingerprint:
        store.refresh()
    return sign_jobs(store, jobs, _Worker.keyring)


class SigningPool:
    """Signs batches of jobs on ``workers`` processes (1: a thread of this process)."""

    def __init__(self, store: KeyStore, workers: int, kek_files: tuple[Path, ...] = ()) -> None:
        self.store = store
        self.workers = workers if workers > 0 else usable_cpus()
        self.kek_files = kek_files  # current first: what workers open tenant keys with
        self._executor: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the worker processes (each loads the keys once)."""
        if self.workers > 1 and self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                # spawn, not fork: the stage's process runs an event loop and bus threads.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(
                    str(self.store.directory),
                    os.getpid(),
                    tuple(str(path) for path in self.kek_files),
                ),
            )

    async def sign(self, jobs: Sequence[SignJob]) -> list[SignOutcome]:
        """Sign ``jobs`` across the workers; outcomes in the same order."""
        if not jobs:
            return []
        if self._executor is None:
            return await asyncio.to_thread(sign_jobs, self.store, jobs)
        loop = asyncio.get_running_loop()
        size = math.ceil(len(jobs) / self.workers)
        chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        fingerprint = self.store.fingerprint
        try:
            results = await asyncio.gather(
                *(loop.run_in_executor(self._executor, _run_chunk, fingerprint, c) for c in chunks)
            )
        except BrokenProcessPool as exc:
            # A worker died (OOM kill, crash): start fresh ones; the batch is retried.
            self.close()
            self.start()
            raise StageError("a signing worker died; batch will be retried") from exc
        return [outcome for chunk in results for outcome in chunk]

    def close(self) -> None:
        """Stop the worker processes."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

"""One owner per embedded bus file (``<file>.lock``), one process per consumer group
(``<file>.group-<name>.lock``): exclusive ``flock`` locks.

The embedded bus keeps consumer groups in the memory of one process, so two processes
consuming one SQLite file each read every partition: two ``make run`` on one
``data/postline.db`` delivered every message four times (issue 11). The process that runs
stages (the *owner*) therefore holds an exclusive, non-blocking ``flock`` on a lock file
beside the database for as long as its bus is open, with its PID written inside for the
message a second owner gets. The kernel drops the lock when the process dies (even on
SIGKILL), so a stale lock file is harmless and is never deleted (deleting it would let two
processes lock two different inodes).

Clients (``events tail``, ``message show``, ``suppress ...``) take no owner lock: they never
join a consumer group, so they cannot duplicate work, and they must keep working beside a
running ``postline run``. Owns the locks only; who is an owner is ``shared.bus.factory``'s
choice (tests that build an ``EmbeddedBus`` themselves choose with its ``lock`` argument).

A process that runs stages without the owner lock (a stage process of a ``postline run``
spread over several processes, ``shared.runtime.children``) still keeps each consumer group
in one process: the bus takes the group's lock when the group's first member in the process
joins (:meth:`OwnerLock.acquire_group`), so a second process joining the same group is
refused with the holder's PID instead of reading every partition a second time.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path

from shared.errors import BusUnavailable

_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")


def lock_path(database: Path) -> Path:
    """The lock file of a database file: ``data/postline.db`` -> ``data/postline.db.lock``."""
    return database.with_name(database.name + ".lock")


def group_lock_path(database: Path, group: str) -> Path:
    """The lock file of one consumer group: ``data/postline.db.group-postline-signer.lock``
    (a name with other characters than letters, digits, ``.``, ``_`` and ``-``, or longer
    than 100, is named by its hash)."""
    if not _SAFE_NAME.fullmatch(group):
        group = hashlib.blake2b(group.encode(), digest_size=16).hexdigest()
    return database.with_name(f"{database.name}.group-{group}.lock")


class OwnerLock:
    """The held lock; :meth:`release` (or process exit) gives it up."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, database: Path) -> OwnerLock:
        """Lock ``database``'s lock file now or raise ``BusUnavailable`` naming the holder."""
        return cls._acquire(lock_path(database), partial(_in_use, database))

    @classmethod
    def acquire_group(cls, database: Path, group: str) -> OwnerLock:
        """Lock consumer group ``group`` of ``database`` for this process now, or raise
        ``BusUnavailable`` naming the process that holds it."""
        refusal = partial(_group_in_use, database, group)
        return cls._acquire(group_lock_path(database, group), refusal)

    @classmethod
    def _acquire(cls, path: Path, refusal: Callable[[Path, int | None], str]) -> OwnerLock:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise BusUnavailable(f"embedded bus: cannot open {path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise BusUnavailable(f"embedded bus: cannot lock {path}: {exc.strerror}") from exc
            raise BusUnavailable(refusal(path, holder)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        """Unlock and close (idempotent). The file stays: see the module docstring."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _who(holder: int | None) -> str:
    return f"process {holder}" if holder is not None else "another process"


def _in_use(database: Path, path: Path, holder: int | None) -> str:
    return (
        f"embedded bus {database} is already in use by {_who(holder)} (lock {path}); "
        "two processes running stages on one file would each deliver every message. "
        "Stop the other one, or give this one its own [embedded] path"
    )


def _group_in_use(database: Path, group: str, path: Path, holder: int | None) -> str:
    return (
        f"consumer group {group} of embedded bus {database} is already used by "
        f"{_who(holder)} (lock {path}); on the embedded bus a group lives in one process. "
        "Stop the other one, or give this one its own [embedded] path"
    )

"""One owner per embedded bus file: an exclusive ``flock`` on ``<file>.lock``.

The embedded bus keeps consumer groups in the memory of one process, so two processes
consuming one SQLite file each read every partition: two ``make run`` on one
``data/postline.db`` delivered every message four times (issue 11). The process that runs
stages (the *owner*) therefore holds an exclusive, non-blocking ``flock`` on a lock file
beside the database for as long as its bus is open, with its PID written inside for the
message a second owner gets. The kernel drops the lock when the process dies (even on
SIGKILL), so a stale lock file is harmless and is never deleted (deleting it would let two
processes lock two different inodes).

Clients (``events tail``, ``message show``, ``suppress ...``) take no lock: they never join
a consumer group, so they cannot duplicate work, and they must keep working beside a running
``postline run``. Owns the lock only; who is an owner is ``shared.bus.factory``'s choice
(tests that build an ``EmbeddedBus`` themselves choose with its ``lock`` argument).
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from shared.errors import BusUnavailable


def lock_path(database: Path) -> Path:
    """The lock file of a database file: ``data/postline.db`` -> ``data/postline.db.lock``."""
    return database.with_name(database.name + ".lock")


class OwnerLock:
    """The held lock; :meth:`release` (or process exit) gives it up."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, database: Path) -> OwnerLock:
        """Lock ``database``'s lock file now or raise ``BusUnavailable`` naming the holder."""
        path = lock_path(database)
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
            raise BusUnavailable(_in_use(database, path, holder)) from None
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


def _in_use(database: Path, path: Path, holder: int | None) -> str:
    who = f"process {holder}" if holder is not None else "another process"
    return (
        f"embedded bus {database} is already in use by {who} (lock {path}); "
        "two processes running stages on one file would each deliver every message. "
        "Stop the other one, or give this one its own [embedded] path"
    )

"""SMTP AUTH users: the users file, scrypt secrets, and verification in constant time.

The users file (JSON, or TOML for hand-written files) maps a user name to its secret and the
sender domains it may use::

    {"users": {"alice": {"secret": "scrypt$16384$8$1$<salt b64>$<hash b64>",
                         "domains": ["example.com"]}}}

Secrets are scrypt (RFC 7914) with a random 16-byte salt per user (``shared.credentials``,
which the tenants' credentials share); the plain password is never stored or logged.
Verification runs in a worker thread (scrypt costs tens of milliseconds) and compares digests
with ``hmac.compare_digest``. An unknown user is checked against a dummy secret so response
times do not reveal which names exist.

This module owns the file format and the in-memory user table (re-read on SIGHUP
and when the file changes). Throttling repeated failures is ``ratelimit.FailureLog``'s job,
and speaking the SMTP AUTH exchange is ``server.py``'s.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

import msgspec

from shared.credentials import hash_secret, verify_secret
from shared.errors import ConfigError
from shared.wire.records import DEFAULT_TENANT


class UserEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One user in the users file."""

    secret: str  # "scrypt$N$r$p$salt$hash" (base64)
    domains: list[str] = []  # sender domains the user may use (MAIL FROM and From header)


class UsersFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The whole users file."""

    users: dict[str, UserEntry] = {}


@dataclass(frozen=True)
class User:
    """An authenticated user as a session sees it."""

    name: str
    domains: frozenset[str]  # users file: its domains; a tenant's login: its restriction (or ())
    tenant: str = DEFAULT_TENANT

    def may_send_from(self, domain: str) -> bool:
        """Whether ``domain`` is one of the user's (exact match: a subdomain must be listed)."""
        return domain.lower().rstrip(".") in self.domains


def read_users(path: Path) -> UsersFile:
    """Read and validate a users file; :class:`ConfigError` names the file and the problem."""
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw or b"{}")
        return msgspec.convert(data, UsersFile)
    except FileNotFoundError as exc:
        raise ConfigError(str(path), "", "users file not found") from exc
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read users file: {exc.strerror}") from exc
    except (ValueError, msgspec.ValidationError) as exc:
        raise ConfigError(str(path), "", f"invalid users file: {exc}") from exc


def write_users(path: Path, users: UsersFile) -> None:
    """Write a users file atomically (JSON), readable by its owner only."""
    tmp = path.with_name(path.name + ".tmp")
    data = msgspec.json.format(msgspec.json.encode(users), indent=2) + b"\n"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class Users:
    """The user table of a running ingest, re-read when the file changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._users: dict[str, UserEntry] = {}
        self._stamp: tuple[int, int] | None = None
        self._dummy = hash_secret(secrets.token_hex(16))
        if path is not None:
            self.reload()

    def reload(self) -> None:
        """Read the file now (startup, SIGHUP); raises :class:`ConfigError` when unusable."""
        if self.path is None:
            return
        stat = self.path.stat() if self.path.exists() else None
        self._users = dict(read_users(self.path).users)
        self._stamp = (stat.st_mtime_ns, stat.st_size) if stat else None

    def _refresh(self) -> None:
        # Re-read when the file changed, so `postline user add` needs no restart.
        if self.path is None:
            return
        try:
            stat = self.path.stat()
        except OSError:
            return
        if (stat.st_mtime_ns, stat.st_size) != self._stamp:
            try:
                self.reload()
            except ConfigError:
                return  # keep the last good table; the next change is tried again

    async def verify(self, name: bytes, password: bytes) -> User | None:
        """The user when ``name`` and ``password`` match, else ``None``."""
        self._refresh()
        login = name.decode("utf-8", errors="replace")
        entry = self._users.get(login)
        secret = entry.secret if entry is not None else self._dummy
        ok = await asyncio.to_thread(verify_secret, password, secret)
        if entry is None or not ok:
            return None
        return User(login, frozenset(d.lower().rstrip(".") for d in entry.domains))

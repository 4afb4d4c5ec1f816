"""``postline user add NAME --domain D [--password-file F]``: add or replace an AUTH user.

Writes the users file named by ``--users-file`` or, by default, ``ingest.users_file`` of the
config (``postline --config``). The password comes from a file (first line; ``-`` is standard
input, for ``pass show smtp | postline user add ...``) or is asked for twice on the terminal;
it is never taken on the command line, where ``ps`` would show it. Without a terminal and
without ``--password-file`` the command says so instead of failing on end of input.
This module owns the command only; the file format is ``auth.py``'s, hashing is
``shared.credentials``'.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

import msgspec

from services.ingest.auth import UserEntry, UsersFile, read_users, write_users
from shared.config import Config
from shared.credentials import MIN_PASSWORD, hash_secret
from shared.errors import ConfigError, PostlineError


class PasswordError(PostlineError):
    """The password given to ``user add`` is missing, too short or was mistyped."""


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register ``user add`` with the ``postline`` CLI."""
    user = subparsers.add_parser("user", help="manage ingest AUTH users")
    actions = user.add_subparsers(dest="user_command", required=True)
    add = actions.add_parser("add", help="add a user (or replace its password and domains)")
    add.add_argument("name", help="the AUTH user name")
    add.add_argument(
        "--domain", action="append", required=True, help="a sender domain (repeatable)"
    )
    add.add_argument(
        "--password-file",
        metavar="PATH",
        help="read the password from the first line of PATH ('-': standard input)",
    )
    add.add_argument("--users-file", type=Path, help="default: ingest.users_file of the config")
    add.set_defaults(handler=run_add)


def _users_path(args: argparse.Namespace, config: Config) -> Path:
    if args.users_file is not None:
        return Path(args.users_file)
    path = config.core.ingest.get("users_file")
    if not path:
        raise ConfigError(config.source, "ingest.users_file", "not set (or pass --users-file)")
    return Path(path)


def _password(path: str | None) -> str:
    if path == "-":
        password = sys.stdin.readline().rstrip("\r\n")
    elif path is not None:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise PasswordError(f"{path}: cannot read: {exc.strerror}") from exc
        password = lines[0] if lines else ""
    elif not sys.stdin.isatty():
        # getpass would read the pipe (or hit end of input with an EOFError traceback).
        raise PasswordError(
            "standard input is not a terminal: pass --password-file PATH "
            "(or --password-file - to read the password from standard input)"
        )
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise PasswordError("the passwords differ")
    if len(password) < MIN_PASSWORD:
        raise PasswordError(f"the password must have at least {MIN_PASSWORD} characters")
    return password


def add_user(path: Path, name: str, domains: list[str], password: str) -> None:
    """Add or replace ``name`` in the users file at ``path`` (created when missing)."""
    users = read_users(path) if path.exists() else UsersFile()
    entry = UserEntry(hash_secret(password), sorted({d.lower().rstrip(".") for d in domains}))
    if path.suffix == ".toml":
        raise ConfigError(str(path), "", "user add writes JSON users files only")
    write_users(path, msgspec.structs.replace(users, users={**users.users, name: entry}))


def run_add(args: argparse.Namespace, config: Config) -> int:
    """The ``user add`` command; returns the exit code."""
    try:
        path = _users_path(args, config)
        add_user(path, args.name, args.domain, _password(args.password_file))
    except PostlineError as exc:
        print(f"postline user add: {exc}", file=sys.stderr)
        return 1
    print(f"user {args.name} written to {path}")
    return 0

"""Users file, scrypt secrets and the ``user add`` command."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from services.ingest.auth import Users, read_users
from services.ingest.users import add_commands, add_user
from shared.config import load_config
from shared.credentials import hash_secret, verify_secret
from shared.errors import ConfigError


def test_secret_roundtrip_and_salted() -> None:
    a, b = hash_secret("pw", n=2**4), hash_secret("pw", n=2**4)
    assert a != b and a.startswith("scrypt$16$8$1$")
    assert verify_secret(b"pw", a) and not verify_secret(b"pW", a)
    assert not verify_secret(b"pw", "plain$pw") and not verify_secret(b"pw", "garbage")


async def test_users_verify_and_reload_on_change(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    add_user(path, "alice", ["Example.com."], "a long enough password")
    assert "a long enough" not in path.read_text()
    users = Users(path)
    user = await users.verify(b"alice", b"a long enough password")
    assert user is not None and user.domains == frozenset({"example.com"})
    assert user.may_send_from("EXAMPLE.COM") and not user.may_send_from("sub.example.com")
    assert await users.verify(b"alice", b"wrong") is None
    assert await users.verify(b"nobody", b"a long enough password") is None
    add_user(path, "bob", ["bob.test"], "another long password")
    assert await users.verify(b"bob", b"another long password") is not None


def test_toml_users_file_and_errors(tmp_path: Path) -> None:
    secret = hash_secret("pw", n=2**4)
    toml = tmp_path / "users.toml"
    toml.write_text(f'[users.carol]\nsecret = "{secret}"\ndomains = ["c.test"]\n')
    assert read_users(toml).users["carol"].domains == ["c.test"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"users": {"x": {"password": "plain"}}}))
    with pytest.raises(ConfigError, match=r"bad\.json"):
        read_users(bad)
    with pytest.raises(ConfigError, match="not found"):
        read_users(tmp_path / "missing.json")


def test_user_add_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    password = tmp_path / "pw"
    password.write_text("twelve chars or more\n")
    users = tmp_path / "users.json"
    config_file = tmp_path / "postline.toml"
    config_file.write_text(f'[ingest]\nusers_file = "{users}"\n')
    args = parser.parse_args(
        ["user", "add", "dave", "--domain", "d.test", "--password-file", str(password)]
    )
    assert args.handler(args, load_config(config_file)) == 0
    assert verify_secret(b"twelve chars or more", read_users(users).users["dave"].secret)
    password.write_text("short\n")
    assert args.handler(args, load_config(config_file)) == 1
    assert "at least 12" in capsys.readouterr().err

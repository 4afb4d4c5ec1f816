"""``postline tenant ...`` end to end through ``shared.cli.main`` on an embedded bus file."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from shared import cli
from shared.bus.embedded import EmbeddedBus
from shared.config import EmbeddedConfig
from shared.tenants import TenantTable
from shared.wire.records import EventKind
from shared.wire.topics import EVENTS
from testing.topics import read_all


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "postline.toml"
    path.write_text(f'[embedded]\npath = "{tmp_path / "bus.db"}"\npartitions = 2\n')
    return path


def run(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["--config", str(config), "tenant", *args])
    out, err = capsys.readouterr()
    return code, out, err


def table(config: Path) -> TenantTable:
    async def load() -> TenantTable:
        bus = EmbeddedBus(EmbeddedConfig(path=config.parent / "bus.db", partitions=2))
        await bus.start()
        try:
            found = TenantTable()
            await found.load(bus)
            return found
        finally:
            await bus.close()

    return asyncio.run(load())


def audit_details(config: Path) -> list[str]:
    async def read() -> list[str]:
        bus = EmbeddedBus(EmbeddedConfig(path=config.parent / "bus.db", partitions=2))
        await bus.start()
        try:
            events = [EVENTS.decode(m.value) for m in await read_all(bus, EVENTS.name) if m.value]
            return [e.detail for e in events if e.kind is EventKind.TENANT_CHANGED]
        finally:
            await bus.close()

    return asyncio.run(read())


def test_tenant_lifecycle(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config, capsys, "add", "shop", "--name", "Shop")[:2] == (0, "tenant shop added\n")
    code, out, _ = run(config, capsys, "add", "shop")
    assert code == 0 and "exists already" in out
    code, out, _ = run(
        config, capsys, "set", "shop", "--per-second", "5", "--burst", "20", "--per-day",
        "10000", "--message-size", "25MiB", "--recipients", "50", "--sessions", "4",
        "--ip-pool", "warm", "--paused-reply", "defer",
    )  # fmt: skip
    assert (code, out) == (0, "tenant shop changed\n")
    code, out, _ = run(config, capsys, "show", "shop")
    shown = json.loads(out)
    assert shown["limits"]["message_size"] == 25 * 1024 * 1024
    assert shown["limits"]["recipients_per_message"] == 50
    assert shown["ip_pool"] == "warm" and shown["settings"]["paused_reply"] == "defer"
    assert run(config, capsys, "pause", "shop", "--why", "complaints")[:2] == (
        0,
        "tenant shop paused\n",
    )
    assert run(config, capsys, "pause", "shop", "--why", "complaints")[0] == 0  # a retry
    found = table(config).get("shop")
    assert found is not None and found.status.why == "complaints"
    assert found.status.by.startswith("cli:")
    assert run(config, capsys, "resume", "shop")[1] == "tenant shop active\n"
    assert run(config, capsys, "disable", "shop", "--why", "closed")[1] == "tenant shop disabled\n"
    code, out, _ = run(config, capsys, "list")
    assert code == 0 and out.startswith("shop ") and "disabled" in out and "Shop" in out
    assert run(config, capsys, "remove", "shop")[1] == "tenant shop removed\n"
    assert "nothing to do" in run(config, capsys, "remove", "shop")[1]
    assert run(config, capsys, "list")[1] == ""
    assert audit_details(config) == [
        "add",
        "set burst, ip_pool, message_size, paused_reply, per_day, per_second, "
        "recipients_per_message, sessions",
        "pause: complaints",
        "resume",
        "disable: closed",
        "remove",
    ]


def test_a_tenants_own_reputation_thresholds(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(config, capsys, "add", "shop")
    code, out, err = run(
        config, capsys, "set", "shop", "--reputation", "bounce_pause=8%",
        "--reputation", "complaint_warning=0.0005", "--reputation", "min_messages=50",
    )  # fmt: skip
    assert (code, out) == (0, "tenant shop changed\n"), err
    run(config, capsys, "set", "shop", "--reputation", "block_pause=0.3")
    found = table(config).get("shop")
    assert found is not None
    own = found.settings.reputation
    assert (own.bounce_pause, own.complaint_warning, own.min_messages) == (0.08, 0.0005, 50)
    assert (own.block_pause, own.bounce_warning) == (0.3, 0.0)  # a change keeps the others


def test_a_tenants_own_content_rules(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(config, capsys, "add", "shop")
    code, out, err = run(
        config, capsys, "set", "shop", "--content", "allowed_extensions=MSI, .exe",
        "--content", "blocked_extensions=xlsm", "--content", "max_attachment_size=10MiB",
        "--content", "signed_changes=allow",
    )  # fmt: skip
    assert (code, out) == (0, "tenant shop changed\n"), err
    run(config, capsys, "set", "shop", "--content", "max_attachments=5")
    found = table(config).get("shop")
    assert found is not None
    own = found.settings.content
    assert (own.allowed_extensions, own.blocked_extensions) == (("exe", "msi"), ("xlsm",))
    assert (own.max_attachment_size, own.max_attachments) == (10 * 1024**2, 5)
    assert own.signed_changes == "allow"  # a change keeps the others
    run(config, capsys, "set", "shop", "--content", "allowed_extensions=")
    found = table(config).get("shop")
    assert found is not None and found.settings.content.allowed_extensions == ()
    assert audit_details(config)[-1] == "set content"


def test_a_tenants_open_and_click_tracking(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(config, capsys, "add", "shop")
    code, out, err = run(
        config, capsys, "set", "shop", "--track-opens", "on", "--track-clicks", "off",
        "--tracking-host", "Click.Shop.Example.",
    )  # fmt: skip
    assert (code, out) == (0, "tenant shop changed\n"), err
    shown = json.loads(run(config, capsys, "show", "shop")[1])["settings"]["tracking"]
    assert shown == {
        "opens": True,
        "clicks": False,
        "text_clicks": None,
        "host": "click.shop.example",
    }
    # inherit: back to what the level above says; the others stay as they were.
    run(config, capsys, "set", "shop", "--track-opens", "inherit", "--track-text-clicks", "on")
    found = table(config).get("shop")
    assert found is not None
    tracking = found.settings.tracking
    assert (tracking.opens, tracking.clicks, tracking.text_clicks) == (None, False, True)
    assert tracking.host == "click.shop.example"
    assert run(config, capsys, "set", "shop", "--tracking-host", "click.shop.example")[1] == (
        "tenant shop unchanged\n"
    )
    code, _, err = run(config, capsys, "set", "shop", "--tracking-host", "https://x.example")
    assert code == 1 and err.startswith("postline: settings.tracking.host: 'https://x.example'")
    assert audit_details(config) == ["add", "set tracking", "set tracking"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("set", "shop", "--content", "blocked_extensions=ex e"),
            "postline: settings.content.blocked_extensions: 'ex e' is not an extension",
        ),
        (
            ("set", "shop", "--content", "signed_changes=maybe"),
            "postline: settings.content.signed_changes: expected refuse, allow",
        ),
        (
            ("set", "shop", "--content", "max_attachment_size=big"),
            "postline: settings.content.max_attachment_size: expected a size",
        ),
        (("set", "shop", "--content", "size=1"), "postline: settings.content.size: no such rule"),
        (("show", "ghost"), "postline: no tenant 'ghost'\n"),
        (("pause", "ghost", "--why", "x"), "postline: no tenant 'ghost'\n"),
        (("add", "Bad_Id"), "postline: tenant id 'Bad_Id': expected"),
        (("add", "default"), "postline: tenant id 'default' is reserved"),
        (("set", "shop", "--per-hour", "ten"), "postline: limits.per_hour: expected a whole"),
        (("set", "shop", "--message-size", "huge"), "postline: limits.message_size: expected"),
        (
            ("set", "shop", "--reputation", "bounce_pause=120%"),
            "postline: settings.reputation.bounce_pause: expected a rate from 0 to 1",
        ),
        (
            ("set", "shop", "--reputation", "bounce=0.1"),
            "postline: settings.reputation.bounce: no such threshold",
        ),
        (("set", "shop", "--reputation", "bounce_pause"), "postline: --reputation 'bounce_pause'"),
        (("apikey", "revoke", "shop", "pl_00000000"), "postline: no API key 'pl_00000000'"),
        (("credential", "rotate", "shop", "ghost"), "postline: no credential 'ghost'"),
    ],
)
def test_errors_are_one_line_and_exit_1(
    config: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    run(config, capsys, "add", "shop")
    code, _, err = run(config, capsys, *args)
    assert code == 1
    assert err.startswith(message) and err.count("\n") == 1


def test_credentials(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run(config, capsys, "add", "shop")
    run(config, capsys, "add", "other")
    code, out, _ = run(config, capsys, "credential", "add", "shop", "shop-app")
    assert code == 0 and "shown once" in out
    password = next(line for line in out.splitlines() if line.startswith("password: "))[10:]
    assert len(password) == 24

    def verify(name: str, secret: str) -> bool:
        tenants = table(config)
        return asyncio.run(tenants.verify_credential(name, secret.encode())) is not None

    assert verify("shop-app", password)
    code, _, err = run(config, capsys, "credential", "add", "other", "shop-app")
    assert code == 1 and "belongs to tenant 'shop'" in err
    monkeypatch.setattr("sys.stdin", io.StringIO("chosen by a person\n"))
    code, out, _ = run(
        config, capsys, "credential", "rotate", "shop", "shop-app", "--password-file", "-"
    )
    assert code == 0 and "password:" not in out  # a given password is not printed back
    assert verify("shop-app", "chosen by a person")
    assert not verify("shop-app", password)
    code, out, _ = run(config, capsys, "credential", "list", "shop")
    row = json.loads(out)
    assert row["name"] == "shop-app" and "secret" not in row and "scrypt" not in out
    assert "scrypt" not in run(config, capsys, "show", "shop")[1]
    assert run(config, capsys, "credential", "remove", "shop", "shop-app")[0] == 0
    assert run(config, capsys, "credential", "remove", "shop", "shop-app")[0] == 0  # retry
    assert table(config).by_credential("shop-app") is None


def test_api_keys(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(config, capsys, "add", "shop")
    code, out, _ = run(config, capsys, "apikey", "add", "shop", "--name", "ci")
    assert code == 0
    key = next(line for line in out.splitlines() if line.startswith("key: "))[5:]
    key_id = key[:11]
    assert table(config).by_api_key(key) is not None
    code, out, _ = run(config, capsys, "apikey", "list", "shop")
    row = json.loads(out)
    assert row["id"] == key_id and row["name"] == "ci" and key not in out and "hash" not in row
    assert run(config, capsys, "apikey", "revoke", "shop", key_id)[0] == 0
    assert run(config, capsys, "apikey", "revoke", "shop", key_id)[0] == 0  # a retry
    assert table(config).by_api_key(key) is None
    assert json.loads(run(config, capsys, "apikey", "list", "shop")[1])["revoked_at"] > 0


def test_set_require_tls(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config, capsys, "add", "shop")[0] == 0
    assert json.loads(run(config, capsys, "show", "shop")[1])["settings"]["require_tls"] is None
    assert run(config, capsys, "set", "shop", "--require-tls", "on")[:2] == (
        0,
        "tenant shop changed\n",
    )
    assert json.loads(run(config, capsys, "show", "shop")[1])["settings"]["require_tls"] is True
    assert run(config, capsys, "set", "shop", "--require-tls", "inherit")[0] == 0
    assert json.loads(run(config, capsys, "show", "shop")[1])["settings"]["require_tls"] is None
    assert audit_details(config)[-2:] == ["set require_tls", "set require_tls"]


def test_set_store_retention(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """0 (the store's default) or 1 to 3650 days; anything else is refused, nothing set."""
    assert run(config, capsys, "add", "shop")[0] == 0
    settings = json.loads(run(config, capsys, "show", "shop")[1])["settings"]
    assert settings["retention_days"] == 0
    assert run(config, capsys, "set", "shop", "--retention-days", "90")[:2] == (
        0,
        "tenant shop changed\n",
    )
    assert json.loads(run(config, capsys, "show", "shop")[1])["settings"]["retention_days"] == 90
    for bad in ("3651", "-1", "7.5", "ten", ""):
        code, _, err = run(config, capsys, "set", "shop", f"--retention-days={bad}")
        assert code == 1 and "settings.retention_days" in err, (bad, err)
    assert json.loads(run(config, capsys, "show", "shop")[1])["settings"]["retention_days"] == 90
    assert run(config, capsys, "set", "shop", "--retention-days", "3650")[0] == 0
    assert run(config, capsys, "set", "shop", "--retention-days", "0")[0] == 0
    assert json.loads(run(config, capsys, "show", "shop")[1])["settings"]["retention_days"] == 0
    assert audit_details(config)[-1] == "set retention_days"

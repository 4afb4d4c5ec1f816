"""``postline suppress ...`` and ``postline bounce classify`` through the real CLI entry point."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from shared.cli import main
from tests.services.bouncer.conftest import write_config

DATA = Path(__file__).resolve().parents[2] / "data" / "bounces"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run ``postline argv...``; its exit code and stdout."""
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_suppress_add_list_export_remove(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path))
    code, out = run(
        capsys,
        "--config",
        config,
        "suppress",
        "add",
        "Gone@Example.org",
        "--reason",
        "hard_bounce",
        "--detail",
        "from a support ticket",
    )
    assert code == 0 and json.loads(out)["suppressed"] == "gone@example.org"
    code, _ = run(
        capsys,
        "--config",
        config,
        "suppress",
        "add",
        "reader@example.org",
        "--reason",
        "unsubscribe",
        "--scope",
        "shop.example",
    )
    assert code == 0

    code, out = run(capsys, "--config", config, "suppress", "list")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["address"], r["scope"], r["reason"], r["source"]) for r in rows] == [
        ("gone@example.org", "", "hard_bounce", "cli"),
        ("reader@example.org", "shop.example", "unsubscribe", "cli"),
    ]

    export = tmp_path / "audit.csv"
    code, _ = run(capsys, "--config", config, "suppress", "export", "-o", str(export))
    assert code == 0
    table = list(csv.DictReader(io.StringIO(export.read_text())))
    assert [r["address"] for r in table] == ["gone@example.org", "reader@example.org"]
    assert table[0]["detail"] == "from a support ticket"

    code, _ = run(capsys, "--config", config, "suppress", "remove", "gone@example.org")
    assert code == 0
    code, out = run(capsys, "--config", config, "suppress", "list")
    assert [json.loads(line)["address"] for line in out.splitlines()] == ["reader@example.org"]


def test_suppress_tenant_entries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--tenant`` adds, lists, exports and removes one tenant's entry apart from the global
    one of the same address; a malformed tenant id is refused before the bus is touched."""
    config = str(write_config(tmp_path))
    base = ("--config", config, "suppress")
    code, out = run(
        capsys, *base, "add", "r@example.org", "--reason", "complaint", "--tenant", "t1"
    )
    assert code == 0 and json.loads(out)["tenant"] == "t1"
    assert run(capsys, *base, "add", "r@example.org")[0] == 0
    code, out = run(capsys, *base, "list")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["address"], r["tenant"], r["reason"]) for r in rows] == [
        ("r@example.org", "", "manual"),
        ("r@example.org", "t1", "complaint"),
    ]
    export = tmp_path / "audit.csv"
    assert run(capsys, *base, "export", "-o", str(export))[0] == 0
    assert [r["tenant"] for r in csv.DictReader(io.StringIO(export.read_text()))] == ["", "t1"]

    assert run(capsys, *base, "remove", "r@example.org", "--tenant", "t1")[0] == 0
    code, out = run(capsys, *base, "list")
    assert [json.loads(line)["tenant"] for line in out.splitlines()] == [""]

    assert main([*base, "add", "r@example.org", "--tenant", "Bad Tenant!"]) == 2
    assert "tenant id" in capsys.readouterr().err


def test_bounce_classify_prints_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path))
    files = [str(DATA / "postfix_dsn_user_unknown.eml"), str(DATA / "arf_abuse_yahoo.eml")]
    code, out = run(capsys, "--config", config, "bounce", "classify", *files)
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(x["recipient"], x["status"], x["class"], x["rule"]) for x in lines] == [
        ("nobody@customer.example", "5.1.1", "hard", "rfc3463:5.1.1"),
        ("annoyed@yahoo.com", "", "complaint", "arf:abuse"),
    ]
    assert lines[0]["file"] == files[0]
    assert [(x["reason"], x["delivery_status"]) for x in lines] == [
        ("userunknown", "5.1.1"),
        ("feedback", ""),
    ]


def test_bounce_classify_shows_the_reason_and_a_derived_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An old Sendmail transcript gives reply codes only: the reason and the reply code's
    # class give the status (550 "User unknown" is 5.1.1, "Host unknown" 5.1.2).
    config = str(write_config(tmp_path))
    file = str(DATA / "sendmail_v5_host_unknown.eml")
    code, out = run(capsys, "--config", config, "bounce", "classify", file)
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    got = [(x["reason"], x["status"], x["delivery_status"], x["class"]) for x in lines]
    assert sorted(got) == [
        ("hostunknown", "", "5.1.2", "hard"),
        ("userunknown", "", "5.1.1", "hard"),
    ]


def test_bounce_classify_missing_file_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path))
    code, _ = run(capsys, "--config", config, "bounce", "classify", str(tmp_path / "nope.eml"))
    assert code == 1

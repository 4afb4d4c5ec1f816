"""deploy/check/rules.py: promtool checks the alerts and runs their unit tests."""

from __future__ import annotations

from pathlib import Path

import rules
from common import MONITORING

RULE_FILE = MONITORING / "prometheusrule.yaml"


def broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = RULE_FILE.read_text()
    assert old in text
    path = tmp_path / "prometheusrule.yaml"
    path.write_text(text.replace(old, new))
    return path


def test_rules_parse_and_every_unit_test_passes() -> None:
    assert rules.check() == []


def test_every_alert_has_a_unit_test() -> None:
    tested = "".join(path.read_text() for path in rules.TESTS.glob("*.yaml"))
    alerts = [
        rule["alert"]
        for group in rules.rule_groups()["groups"]  # type: ignore[attr-defined]
        for rule in group["rules"]
    ]
    assert [a for a in alerts if f"alertname: {a}\n" not in tested] == []


def test_a_syntax_error_fails_promtool_check(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, "> 0.05\n", "> > 0.05\n")
    [problem, *_] = rules.check(path)
    assert problem.startswith(f"promtool check rules {path}:")
    assert "PostlineBounceRateHigh" in problem or "parse error" in problem


def test_a_wrong_threshold_fails_a_unit_test(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, "> 0.05\n", "> 0.5\n")
    [problem] = rules.check(path)
    assert problem.startswith("promtool test rules")
    assert "a bounce rate of 10% fires" in problem
    assert "alertname: PostlineBounceRateHigh" in problem


def test_no_unit_tests_is_a_failure(tmp_path: Path) -> None:
    assert rules.check(RULE_FILE, tmp_path) == [f"{tmp_path}: no promtool unit tests"]

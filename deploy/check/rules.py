"""``promtool check rules`` and ``promtool test rules`` on the PrometheusRule.

The PrometheusRule resource is the single source of the alerts; its ``spec.groups`` are
written to ``postline.rules.yaml`` in a temporary directory next to copies of the unit tests
(``deploy/k8s/components/monitoring/tests/*.yaml``, which name that file), and promtool runs
there. Owns only this step.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import yaml
from common import MONITORING, CheckError, run, tool

RULE_FILE = "postline.rules.yaml"
TESTS = MONITORING / "tests"


def rule_groups(path: Path = MONITORING / "prometheusrule.yaml") -> dict[str, object]:
    """The Prometheus rule file content of the PrometheusRule at ``path``."""
    doc = yaml.safe_load(path.read_text())
    if not doc or doc.get("kind") != "PrometheusRule":
        raise CheckError(f"{path}: not a PrometheusRule")
    return {"groups": doc["spec"]["groups"]}


def check(rule_file: Path = MONITORING / "prometheusrule.yaml", tests: Path = TESTS) -> list[str]:
    """Problems reported by promtool (empty when the rules parse and every test passes)."""
    promtool = tool("promtool")
    test_files = sorted(tests.glob("*.yaml"))
    if not test_files:
        return [f"{tests}: no promtool unit tests"]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / RULE_FILE).write_text(yaml.safe_dump(rule_groups(rule_file), sort_keys=False))
        for test in test_files:
            shutil.copy(test, workdir / test.name)
        problems = []
        checked = run([promtool, "check", "rules", RULE_FILE], cwd=workdir)
        if checked.returncode != 0:
            problems.append(f"promtool check rules {rule_file}:\n{checked.stdout}{checked.stderr}")
        tested = run([promtool, "test", "rules", *(t.name for t in test_files)], cwd=workdir)
        if tested.returncode != 0:
            problems.append(f"promtool test rules ({tests}):\n{tested.stdout}{tested.stderr}")
        return problems

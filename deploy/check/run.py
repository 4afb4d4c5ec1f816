"""``make k8s-check``: every offline check of the deployment, each step able to fail.

Steps: yamllint, hadolint, generated files up to date, ``postline config check`` on the
sample, ``kubectl kustomize`` of every overlay, ``kubernetes-validate --strict`` on the core
resources, the CRD schemas (jsonschema), the cross-reference checks (among them every
container's command line through the real ``postline`` parser), checkov, promtool (rules and
their unit tests), the dashboard lint with ``promtool check metrics`` on the services'
exposition text, and the checkers' own tests. A failing step prints what is wrong and the
run goes on to the next, so one run shows every problem; the exit code is 1 if any step
failed. Owns the order and the reporting, not the checks.

Run: ``python deploy/check/run.py [--crds DIR] [--only STEP ...]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import config_check
import crds
import crossref_cli
import crossref_config
import crossref_k8s
import crossref_kafka
import dashboards
import gen_dashboards
import gen_topics
import rules
import yaml
from common import DEFAULT_CRDS, K8S, REPO, CheckError, Rendered, render_all, run, tool
from exposition import exposition_text

#: checkov checks not applied, with the reason (see docs/deployment.md).
CHECKOV_SKIPS = {
    "CKV_K8S_43": "image digests: the operator builds and pins the image in its own overlay",
}

Step = Callable[[], list[str]]


def step_yamllint() -> list[str]:
    """yamllint on deploy/k8s and the lint config itself."""
    result = run(
        [
            tool("yamllint"),
            "-c",
            str(REPO / ".yamllint"),
            "-f",
            "parsable",
            str(K8S),
            str(REPO / ".yamllint"),
        ]
    )
    return [] if result.returncode == 0 else [result.stdout + result.stderr]


def step_hadolint() -> list[str]:
    """hadolint on the Dockerfile."""
    result = run([tool("hadolint"), str(REPO / "Dockerfile")])
    return [] if result.returncode == 0 else [result.stdout + result.stderr]


def step_generated() -> list[str]:
    """topics.yaml and the dashboards match their generators."""
    problems = []
    for generator in (gen_topics, gen_dashboards):
        messages = io.StringIO()
        with contextlib.redirect_stderr(messages):
            failed = generator.main(["--check"]) != 0
        if failed:
            problems += messages.getvalue().splitlines()
    return problems


def step_core_schemas(rendered: list[Rendered]) -> list[str]:
    """kubernetes-validate --strict on every built-in resource of every overlay."""
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for overlay in rendered:
            core = [doc for doc in overlay.docs if not crds.is_custom(doc)]
            path = Path(tmp) / f"{overlay.overlay}.yaml"
            path.write_text(yaml.safe_dump_all(core))
            result = run([tool("kubernetes-validate"), "--strict", "--quiet", str(path)])
            if result.returncode != 0:
                problems.append(f"{overlay.overlay}:\n{result.stdout}{result.stderr}")
    return problems


def step_checkov(rendered: list[Rendered]) -> list[str]:
    """checkov's Kubernetes policies on every overlay (offline: no platform download)."""
    with tempfile.TemporaryDirectory() as tmp:
        for overlay in rendered:
            Path(tmp, f"{overlay.overlay}.yaml").write_text(yaml.safe_dump_all(overlay.docs))
        result = run(
            [
                tool("checkov"),
                "-d",
                tmp,
                "--framework",
                "kubernetes",
                "--compact",
                "--quiet",
                "--skip-download",
                "--skip-check",
                ",".join(CHECKOV_SKIPS),
            ]
        )
    return [] if result.returncode == 0 else [result.stdout[-6000:] + result.stderr[-2000:]]


def step_metrics() -> list[str]:
    """promtool check metrics on the services' exposition text, then the dashboard lint."""
    import subprocess  # noqa: PLC0415

    result = subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=exposition_text(),
        capture_output=True,
        text=True,
        check=False,
    )
    problems = (
        []
        if result.returncode == 0
        else [f"promtool check metrics:\n{result.stdout}{result.stderr}"]
    )
    return problems + dashboards.lint()


def step_pytest() -> list[str]:
    """The checkers' own tests (tests/deploy; not tests/deploy/local, whose tests need the
    services ``make test`` starts after this check)."""
    result = run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(REPO / "tests/deploy"),
            f"--ignore={REPO / 'tests/deploy/local'}",
        ],
        cwd=REPO,
    )
    return [] if result.returncode == 0 else [result.stdout[-6000:] + result.stderr[-2000:]]


def rendered_steps(crd_dir: Path) -> list[tuple[str, Callable[[list[Rendered]], list[str]]]]:
    """The steps that need the rendered overlays."""

    def custom(rendered: list[Rendered]) -> list[str]:
        schemas = crds.load_schemas(crd_dir)
        return [p for overlay in rendered for p in crds.validate(overlay, schemas)]

    def crossref(rendered: list[Rendered]) -> list[str]:
        return [
            p
            for overlay in rendered
            for module in (crossref_k8s, crossref_kafka, crossref_config, crossref_cli)
            for p in module.check(overlay)
        ]

    return [
        ("kubernetes-validate --strict (core resources)", step_core_schemas),
        ("custom resources against the CRDs", custom),
        ("cross-references", crossref),
        ("checkov", step_checkov),
    ]


def attempt(name: str, func: Callable[[], list[str]]) -> bool:
    """Run one step and report it; ``False`` when it failed."""
    started = time.monotonic()
    try:
        problems = func()
    except CheckError as exc:
        problems = [str(exc)]
    took = time.monotonic() - started
    if not problems:
        print(f"ok      {name} ({took:.1f}s)", flush=True)
        return True
    print(f"FAILED  {name} ({took:.1f}s)", flush=True)
    for problem in problems:
        print("  - " + problem.rstrip().replace("\n", "\n    "), flush=True)
    return False


def main(argv: list[str] | None = None) -> int:
    """Run every step; exit 1 if any failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--crds",
        type=Path,
        default=DEFAULT_CRDS,
        help=f"directory of the operators' CRDs (default {DEFAULT_CRDS})",
    )
    parser.add_argument("--no-pytest", action="store_true", help="skip tests/deploy")
    args = parser.parse_args(argv)
    ok = True
    for name, func in [
        ("yamllint", step_yamllint),
        ("hadolint Dockerfile", step_hadolint),
        ("generated files up to date", step_generated),
        ("postline config check (sample)", config_check.check),
    ]:
        ok = attempt(name, func) and ok
    rendered: list[Rendered] = []

    def do_render() -> list[str]:
        rendered.extend(render_all())
        return []

    if attempt("kubectl kustomize (every overlay)", do_render):
        for name, rstep in rendered_steps(args.crds):
            ok = attempt(name, lambda rstep=rstep: rstep(rendered)) and ok
    else:
        ok = False
    ok = attempt("promtool check rules + test rules", rules.check) and ok
    ok = attempt("promtool check metrics + dashboard lint", step_metrics) and ok
    if not args.no_pytest:
        ok = attempt("pytest tests/deploy", step_pytest) and ok
    print("k8s-check: all steps passed" if ok else "k8s-check: FAILED (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

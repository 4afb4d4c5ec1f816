"""Run each mutant of the listed modules against the tests that should catch it.

Why our own runner rather than mutmut or cosmic-ray: both rewrite or import the package from
a copy and then meet our editable install (which resolves ``shared`` and ``services`` to the
checkout) and the tests that start ``postline`` as a subprocess; mutmut 3 also changes every
function into a trampoline, which our msgspec Structs and enum classes do not survive. What
we need is small: a copy of the repository per worker (``git ls-files``), the mutated module
written into it, pytest run there with ``PYTHONPATH`` pointing at the copy (the path comes
before the editable install's finder, subprocesses inherit it), and the original restored.

A mutant is *killed* when the tests fail (or run past the time limit, which a mutant that
loops forever does); it *survives* when they pass. Survivors listed in ``equivalents.toml``
with a reason are not counted against the module.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from testing.mutation.operators import Mutant, mutants

HERE = Path(__file__).parent
TARGETS = HERE / "targets.toml"
EQUIVALENTS = HERE / "equivalents.toml"

KILLED = "killed"
SURVIVED = "survived"
TIMEOUT = "timeout"
EQUIVALENT = "equivalent"


class MutationError(Exception):
    """The run cannot start: an unknown module, or its tests fail without any mutant."""


@dataclass(frozen=True)
class Target:
    """A module to mutate and the tests that pin its behaviour."""

    module: str
    tests: tuple[str, ...]


@dataclass
class ModuleResult:
    """What became of one module's mutants."""

    module: str
    results: dict[str, str] = field(default_factory=dict)  # mutant ident -> outcome
    survivors: list[Mutant] = field(default_factory=list)

    def count(self, *outcomes: str) -> int:
        """How many mutants ended in one of ``outcomes``."""
        return sum(1 for outcome in self.results.values() if outcome in outcomes)

    @property
    def score(self) -> float:
        """Killed share of the mutants that are not equivalent (1.0 with none)."""
        tried = len(self.results) - self.count(EQUIVALENT)
        return self.count(KILLED, TIMEOUT) / tried if tried else 1.0


def load_targets(path: Path = TARGETS) -> list[Target]:
    """The modules and their tests (``targets.toml``)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [Target(entry["module"], tuple(entry["tests"])) for entry in data["target"]]


def load_equivalents(path: Path = EQUIVALENTS) -> dict[str, str]:
    """Mutant ident -> why it changes nothing observable (``equivalents.toml``)."""
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return {str(ident): str(reason) for ident, reason in data.get("equivalent", {}).items()}


def _copy_repository(root: Path, into: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = root / name.decode()
        if source.is_file():
            target = into / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


class Workspace:
    """A private copy of the repository where one mutant at a time is tried."""

    def __init__(self, root: Path) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="postline-mutation-"))
        _copy_repository(root, self.path)

    def run_tests(self, tests: Sequence[str], timeout: float) -> tuple[bool, float]:
        """Whether ``tests`` pass in the copy, and how long they took."""
        env = os.environ | {"PYTHONPATH": str(self.path), "PYTHONDONTWRITEBYTECODE": "1"}
        command = [sys.executable, "-m", "pytest", "-x", "-q", "--no-header"]
        command += ["-p", "no:cacheprovider"]
        started = time.monotonic()
        done = subprocess.run(
            [*command, *tests],
            cwd=self.path,
            env=env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        return done.returncode == 0, time.monotonic() - started

    def attempt(self, mutant: Mutant, tests: Sequence[str], timeout: float) -> str:
        """Try ``mutant``: killed, survived or timeout; the copy is restored after."""
        target = self.path / mutant.module
        original = target.read_bytes()
        target.write_text(mutant.source, encoding="utf-8")
        try:
            passed, _ = self.run_tests(tests, timeout)
        except subprocess.TimeoutExpired:
            return TIMEOUT
        finally:
            target.write_bytes(original)
        return SURVIVED if passed else KILLED

    def remove(self) -> None:
        """Delete the copy."""
        shutil.rmtree(self.path, ignore_errors=True)


def run(
    root: Path,
    targets: Iterable[Target],
    *,
    jobs: int,
    equivalents: dict[str, str],
    progress: bool = True,
) -> list[ModuleResult]:
    """Try every mutant of every target; the results per module."""
    workspaces = [Workspace(root) for _ in range(max(1, jobs))]
    try:
        return [_run_target(target, workspaces, equivalents, progress) for target in targets]
    finally:
        for workspace in workspaces:
            workspace.remove()


def _run_target(
    target: Target, workspaces: list[Workspace], equivalents: dict[str, str], progress: bool
) -> ModuleResult:
    source_path = workspaces[0].path / target.module
    if not source_path.is_file():
        raise MutationError(f"no module {target.module}")
    passed, seconds = workspaces[0].run_tests(target.tests, timeout=600)
    if not passed:
        raise MutationError(f"the tests of {target.module} fail without a mutant: {target.tests}")
    limit = max(20.0, seconds * 5)
    result = ModuleResult(target.module)
    todo = list(mutants(target.module, source_path.read_text(encoding="utf-8")))
    free = list(workspaces)

    def one(mutant: Mutant) -> tuple[Mutant, str]:
        workspace = free.pop()
        try:
            return mutant, workspace.attempt(mutant, target.tests, limit)
        finally:
            free.append(workspace)

    with ThreadPoolExecutor(max_workers=len(workspaces)) as pool:
        for done, (mutant, tried) in enumerate(pool.map(one, todo), start=1):
            equivalent = tried == SURVIVED and mutant.ident in equivalents
            outcome = EQUIVALENT if equivalent else tried
            result.results[mutant.ident] = outcome
            if outcome == SURVIVED:
                result.survivors.append(mutant)
            if progress and sys.stderr.isatty():
                print(
                    f"\r{target.module}: {done}/{len(todo)}",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
    if progress and sys.stderr.isatty():
        print(file=sys.stderr)
    return result


def report(results: Sequence[ModuleResult]) -> str:
    """The table per module, then the survivors."""
    lines = [
        f"{'module':48} {'mutants':>7} {'killed':>6} {'equiv':>5} {'survived':>8} {'score':>6}"
    ]
    for result in results:
        lines.append(
            f"{result.module:48} {len(result.results):7d} "
            f"{result.count(KILLED, TIMEOUT):6d} {result.count(EQUIVALENT):5d} "
            f"{result.count(SURVIVED):8d} {result.score:6.1%}"
        )
    for result in results:
        for mutant in result.survivors:
            lines.append(f"survived: {mutant.ident} (line {mutant.line}: {mutant.description})")
    return "\n".join(lines)


def as_json(results: Sequence[ModuleResult]) -> str:
    """The figures as JSON (``make mutation`` writes them beside the printed table)."""
    return json.dumps(
        [
            {
                "module": r.module,
                "mutants": len(r.results),
                "killed": r.count(KILLED, TIMEOUT),
                "equivalent": r.count(EQUIVALENT),
                "survived": r.count(SURVIVED),
                "score": round(r.score, 4),
                "survivors": [
                    {"ident": m.ident, "line": m.line, "change": m.description} for m in r.survivors
                ],
            }
            for r in results
        ],
        indent=2,
    )

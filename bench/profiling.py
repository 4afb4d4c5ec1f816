"""Sampling profiles of a running stage with py-spy, summarised as text.

    python bench/profiling.py summarise bench/results/profile-signer.folded [--top 30]

Owns running ``py-spy record`` on a process tree (``--subprocesses``: the signer's signing
workers too) in collapsed-stack ("raw") format for the length of a measured run
(:class:`PySpy`: started before the load, stopped with SIGINT, on which py-spy writes what it
has), and turning the collapsed stacks into a short text summary: the functions with the most
samples on top of the stack (self time) and anywhere in it (inclusive time), and the busiest
processes. py-spy samples only threads that are not idle, so the samples approximate CPU.
py-spy is found on PATH or in ``$PY_SPY``; it is a benchmark tool, not a Postline dependency.
The broker's counterpart is ``bench/jfr.py``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Protocol

#: "process 123:\"python ...\";thread (0x7f..);func (file.py:12);... 42"
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


class Profiler(Protocol):
    """One process profiled for the length of a measured run (:class:`PySpy`,
    ``bench.jfr.BrokerProfile``)."""

    name: str

    def start(self) -> None:
        """Start profiling, before the load."""

    def stop(self, top: int = 25) -> str:
        """Stop profiling, after the run; the summary text."""


def py_spy() -> str | None:
    """The py-spy binary, or ``None`` when it is not installed."""
    return os.environ.get("PY_SPY") or shutil.which("py-spy")


def record(pid: int, output: Path, seconds: float, rate: int = 100) -> subprocess.Popen[bytes]:
    """Start sampling ``pid`` and its subprocesses for ``seconds``; wait on the result."""
    binary = py_spy()
    if binary is None:
        raise FileNotFoundError("py-spy is not installed (pip install py-spy) or set PY_SPY")
    args = [binary, "record", "--pid", str(pid), "--subprocesses", "--format", "raw"]
    args += ["--rate", str(rate), "--duration", str(max(1, int(seconds))), "--output", str(output)]
    args += ["--nonblocking"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class PySpy:
    """py-spy on the process tree of ``pid`` from :meth:`start` to :meth:`stop`."""

    #: py-spy's own limit; the run stops it long before (SIGINT).
    MAX_SECONDS = 3600

    def __init__(self, name: str, pid: int, folded: Path) -> None:
        self.name = name
        self.pid = pid
        self.folded = folded
        self._spy: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start sampling."""
        self._spy = record(self.pid, self.folded, self.MAX_SECONDS)

    def stop(self, top: int = 25) -> str:
        """Stop sampling (py-spy writes the stacks on SIGINT); the summary text."""
        if self._spy is None:
            raise RuntimeError(f"py-spy on {self.name} was not started")
        self._spy.send_signal(signal.SIGINT)
        try:
            self._spy.wait(120)
        except subprocess.TimeoutExpired:
            self._spy.kill()  # no stray sampler on the stage; this profile is lost
            self._spy.wait()
            raise
        if not self.folded.exists():
            raise FileNotFoundError(
                f"py-spy wrote no profile of {self.name} (exit {self._spy.returncode})"
            )
        return summarise(self.folded, top)


def _entries(stack: str) -> list[str]:
    """A collapsed stack split at ``;``, except inside a ``process N:"command line"`` entry
    (the signer's spawned workers run ``python -c "...; spawn_main(...)"``)."""
    entries: list[str] = []
    for part in stack.split(";"):
        if entries and entries[-1].startswith("process ") and not entries[-1].endswith('"'):
            entries[-1] += ";" + part
        else:
            entries.append(part)
    return entries


def _process(entries: list[str]) -> str:
    """The innermost ``process ...`` entry of a collapsed stack: with ``--subprocesses``
    a child's stacks start with its parent's entry, then its own."""
    processes = [entry for entry in entries if entry.startswith("process ")]
    return processes[-1] if processes else "(process unknown)"


def _frames(entries: list[str]) -> list[str]:
    """A collapsed stack's frames as ``function (file)``, process and thread entries dropped."""
    out = []
    for frame in entries:
        if frame.startswith(("process ", "thread ")):
            continue
        match = _FRAME.match(frame)
        if match:
            name = Path(match.group("file")).name
            out.append(f"{match.group('func')} ({name})")
        else:
            out.append(frame)
    return out


def _label(process: str, width: int = 90) -> str:
    """A ``process N:"command line"`` entry cut to ``width``, keeping both ends: the end of
    a command line names the stage (``... shared.runtime.child ... signer``)."""
    if len(process) <= width:
        return process
    half = (width - 5) // 2
    return f"{process[:half]} ... {process[-half:]}"


def summarise(folded: Path, top: int = 25, per_process: int = 10) -> str:
    """The summary text of one collapsed-stack file. With several processes (a process
    tree), each one holding at least 5% of the samples also gets its own ``per_process``
    functions by self time, as shares of all samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    processes: Counter[str] = Counter()
    own_by_process: dict[str, Counter[str]] = {}
    total = 0
    for line in folded.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        entries = _entries(stack)
        frames = _frames(entries)
        process = _label(_process(entries))
        processes[process] += count
        if frames:
            own[frames[-1]] += count
            own_by_process.setdefault(process, Counter())[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"samples: {total}", "", "by process:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in processes.most_common(8)]
    lines += ["", f"self time (top {top}):"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    lines += ["", f"inclusive time (top {top}):"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
    if len(processes) > 1:
        for process, n in processes.most_common():
            if n < total * 0.05:
                break
            lines += ["", f"self time in {process} ({n / total:.1%}, top {per_process}):"]
            counts = own_by_process.get(process, Counter()).most_common(per_process)
            lines += [f"  {c / total:6.1%}  {name}" for name, c in counts]
    return "\n".join(lines) + "\n"


def main() -> int:
    """``summarise FILE``: print the summary of a collapsed-stack profile."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["summarise"])
    parser.add_argument("folded", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    sys.stdout.write(summarise(args.folded, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())

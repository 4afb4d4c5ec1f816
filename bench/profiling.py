"""Sampling profiles of a running stage with py-spy, summarised as text.

    python bench/profiling.py summarise bench/results/profile-signer.folded [--top 30]

Owns starting ``py-spy record`` on a process tree (``--subprocesses``: the signer's signing
workers too) in collapsed-stack ("raw") format for the duration of a measured run, and turning
the collapsed stacks into a short text summary: the functions with the most samples on top of
the stack (self time) and anywhere in it (inclusive time), and the busiest threads/processes.
py-spy is found on PATH or in ``$PY_SPY``; it is a benchmark tool, not a Postline dependency.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

#: "process 123:\"python ...\";thread (0x7f..);func (file.py:12);... 42"
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


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


def _frames(stack: str) -> list[str]:
    """A collapsed stack's frames as ``function (file)``, process and thread entries dropped."""
    out = []
    for frame in stack.split(";"):
        if frame.startswith(("process ", "thread ")):
            continue
        match = _FRAME.match(frame)
        if match:
            name = Path(match.group("file")).name
            out.append(f"{match.group('func')} ({name})")
        else:
            out.append(frame)
    return out


def summarise(folded: Path, top: int = 25) -> str:
    """The summary text of one collapsed-stack file."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    processes: Counter[str] = Counter()
    total = 0
    for line in folded.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = _frames(stack)
        head = stack.split(";", 1)[0]
        processes[head[:90]] += count
        if frames:
            own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"samples: {total}", "", "by process:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in processes.most_common(8)]
    lines += ["", f"self time (top {top}):"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    lines += ["", f"inclusive time (top {top}):"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
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

"""CPU time and peak memory of process trees, read from Linux /proc.

Owns sampling a named set of process trees (a stage's main process plus its signing workers,
the Kafka broker, the sink) before and after a run, so a benchmark can report CPU seconds per
message per stage and each process's peak RSS (``VmHWM``). It does not start processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    """CPU seconds of a tree at one moment, with its processes' peak RSS in MiB."""

    cpu: float
    peak_rss_mib: dict[int, float]  # pid -> VmHWM


def _stat(pid: int) -> tuple[int, float]:
    """(parent pid, CPU seconds) of one process: user + system, its own and its reaped
    children's (Postfix's master reaps daemons that exit after ``max_use`` requests)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), sum(int(f) for f in fields[11:15]) / _TICK


def tree(root: int) -> list[int]:
    """``root`` and every descendant alive now."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents.setdefault(_stat(int(entry))[0], []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue  # exited while we looked
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set size (``VmHWM``) in MiB; 0.0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def sample(root: int, alone: bool = False) -> Sample:
    """CPU seconds used so far by ``root``'s tree (``alone``: by ``root`` itself, without
    descendants or reaped children) and each process's peak RSS."""
    if alone:
        fields = Path(f"/proc/{root}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / _TICK
        return Sample(cpu, {root: round(peak_rss_mib(root), 1)})
    cpu, peaks = 0.0, {}
    for pid in tree(root):
        try:
            cpu += _stat(pid)[1]
        except OSError:
            continue
        peaks[pid] = round(peak_rss_mib(pid), 1)
    return Sample(cpu, peaks)


class Meter:
    """Named process trees sampled at :meth:`start` and :meth:`stop`."""

    def __init__(self, roots: dict[str, int], alone: frozenset[str] = frozenset()) -> None:
        """``roots``: name -> root PID; names in ``alone`` are measured without descendants
        (the benchmark process itself, whose children are the systems under test)."""
        self.roots = roots
        self.alone = alone
        self.before: dict[str, Sample] = {}
        self.after: dict[str, Sample] = {}

    def start(self) -> None:
        """Sample every tree (call right before the load)."""
        self.before = {n: sample(pid, n in self.alone) for n, pid in self.roots.items()}

    def stop(self) -> None:
        """Sample every tree again (call when the last message was delivered)."""
        self.after = {n: sample(pid, n in self.alone) for n, pid in self.roots.items()}

    def restarted(self) -> list[str]:
        """Trees whose root is gone or whose CPU went down: restarted mid-run (e.g. the
        shared test broker), which makes the run's figures meaningless."""
        return [
            name
            for name, pid in self.roots.items()
            if not Path(f"/proc/{pid}").exists() or self.after[name].cpu < self.before[name].cpu
        ]

    def report(self, messages: int) -> dict[str, dict[str, object]]:
        """Per tree: CPU seconds, CPU ms per message and the peak RSS of each process."""
        out: dict[str, dict[str, object]] = {}
        for name in self.roots:
            cpu = self.after[name].cpu - self.before[name].cpu
            out[name] = {
                "cpu_s": round(cpu, 2),
                "cpu_ms_per_msg": round(cpu / max(messages, 1) * 1000, 3),
                "peak_rss_mib": sorted(self.after[name].peak_rss_mib.values(), reverse=True),
            }
        return out

"""The figures of ``make bench-compare``: medians over rounds per system and size, the ratios
between Postline and Postfix, and the printed table.

Pure functions over the run dictionaries ``measure.measure`` returns (one per system,
size and round); nothing here starts a process or sends mail.
"""

from __future__ import annotations

import statistics
from typing import Any

#: The four systems, in the order they are run and printed.
SYSTEMS = ("postline-kafka", "postline-embedded", "postfix", "postfix-opendkim")
#: (numerator, denominator) of every ratio printed.
RATIOS = (
    ("postline-kafka", "postfix"),
    ("postline-kafka", "postfix-opendkim"),
    ("postline-embedded", "postfix"),
    ("postline-embedded", "postfix-opendkim"),
)
#: Figures reported as the median of the rounds.
MEDIAN_KEYS = (
    "accepted_per_s",
    "delivered_per_s",
    "accept_p50_ms",
    "accept_p99_ms",
    "e2e_p50_ms",
    "e2e_p99_ms",
)
#: Figures summed over the rounds (any non-zero one is a failure).
SUM_KEYS = ("missing_messages", "duplicate_recipients")
#: Processes measured beside the system, not part of its CPU per message.
HARNESS = frozenset({"sink", "loadgen"})


def order(round_no: int) -> tuple[str, ...]:
    """The systems in the order of one round: each round starts one system later, so no
    system always runs first (right after a warm-up) or last."""
    shift = round_no % len(SYSTEMS)
    return SYSTEMS[shift:] + SYSTEMS[:shift]


def median(values: list[float]) -> float:
    """The median (mean of the middle two for an even count), rounded to 0.001."""
    return round(float(statistics.median(values)), 3)


def system_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One system at one size: medians of the rounds, sums of the failures, CPU ms per message
    per process (median) and in total without the harness, and each process's peak RSS (the
    highest of its processes over all rounds, MiB)."""
    out: dict[str, Any] = {"rounds": len(runs)}
    for key in MEDIAN_KEYS:
        out[key] = median([r[key] for r in runs])
    for key in SUM_KEYS:
        out[key] = sum(r[key] for r in runs)
    names = list(runs[0]["processes"])
    out["cpu_ms_per_msg"] = {
        name: median([r["processes"][name]["cpu_ms_per_msg"] for r in runs]) for name in names
    }
    out["cpu_ms_per_msg_total"] = median(
        [
            sum(p["cpu_ms_per_msg"] for n, p in r["processes"].items() if n not in HARNESS)
            for r in runs
        ]
    )
    out["peak_rss_mib"] = {
        name: max(max(r["processes"][name]["peak_rss_mib"], default=0.0) for r in runs)
        for name in names
    }
    signed = [r.get("dkim_signed") for r in runs]
    out["dkim_signed"] = None if None in signed else sum(s for s in signed if s is not None)
    return out


def ratio(a: float, b: float) -> float | None:
    """``a / b`` rounded to 0.01; ``None`` when ``b`` is zero."""
    return round(a / b, 2) if b else None


def ratios(systems: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Every pair of :data:`RATIOS` present: delivered msg/s, p99 accept latency,
    p99 accept-to-delivered latency and total CPU per message, numerator over denominator."""
    out: dict[str, dict[str, float | None]] = {}
    for a, b in RATIOS:
        if a in systems and b in systems:
            x, y = systems[a], systems[b]
            out[f"{a}/{b}"] = {
                "delivered_per_s": ratio(x["delivered_per_s"], y["delivered_per_s"]),
                "accept_p99_ms": ratio(x["accept_p99_ms"], y["accept_p99_ms"]),
                "e2e_p99_ms": ratio(x["e2e_p99_ms"], y["e2e_p99_ms"]),
                "cpu_ms_per_msg_total": ratio(x["cpu_ms_per_msg_total"], y["cpu_ms_per_msg_total"]),
            }
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per message size (bytes, as a string key): each system's figures and the ratios."""
    out: dict[str, Any] = {}
    for size in sorted({r["size"] for r in runs}):
        systems = {
            name: system_figures(mine)
            for name in SYSTEMS
            if (mine := [r for r in runs if r["size"] == size and r["system"] == name])
        }
        out[str(size)] = {"systems": systems, "ratios": ratios(systems)}
    return out


def _cell(value: object) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def table(summary: dict[str, Any]) -> str:
    """The comparison as text: one block per size, a column per system, then the ratios."""
    lines: list[str] = []
    for size, block in summary.items():
        systems: dict[str, dict[str, Any]] = block["systems"]
        names = list(systems)
        lines.append(f"\nmessage size {int(size) // 1024} KB, median of rounds")
        lines.append(f"{'':<24}" + "".join(f"{n:>19}" for n in names))
        for key in (*MEDIAN_KEYS, *SUM_KEYS, "cpu_ms_per_msg_total", "dkim_signed"):
            lines.append(f"{key:<24}" + "".join(f"{_cell(systems[n][key]):>19}" for n in names))
        processes = sorted({p for n in names for p in systems[n]["cpu_ms_per_msg"]})
        for process in processes:
            cells = []
            for n in names:
                cpu = systems[n]["cpu_ms_per_msg"].get(process)
                rss = systems[n]["peak_rss_mib"].get(process)
                cells.append("-" if cpu is None else f"{cpu:g} ms {rss:.0f} MiB")
            lines.append(f"{'  ' + process:<24}" + "".join(f"{c:>19}" for c in cells))
        for pair, figures in block["ratios"].items():
            text = ", ".join(f"{k} {_cell(v)}x" for k, v in figures.items())
            lines.append(f"{pair}: {text}")
    return "\n".join(lines)

"""The figures of ``make bench-compare`` (``bench/compare.py``): medians over rounds, the sums
of failures, CPU per message without the harness's processes, peak RSS, ratios and the table,
from hand-made run dictionaries shaped like ``measure.measure``'s."""

from __future__ import annotations

from typing import Any

from bench.compare import RATIOS, SYSTEMS, median, order, ratio, summarise, system_figures, table


def run(system: str, size: int, delivered: float, **over: Any) -> dict[str, Any]:
    """One measured run; ``over`` replaces figures, ``cpu`` sets the system's processes."""
    cpu: dict[str, float] = over.pop("cpu", {"main": 2.0})
    processes = {
        name: {"cpu_s": 1.0, "cpu_ms_per_msg": ms, "peak_rss_mib": [50.0, 10.0]}
        for name, ms in cpu.items()
    }
    processes["sink"] = {"cpu_s": 0.1, "cpu_ms_per_msg": 0.25, "peak_rss_mib": [20.0]}
    processes["loadgen"] = {"cpu_s": 0.1, "cpu_ms_per_msg": 0.5, "peak_rss_mib": [60.0]}
    figures: dict[str, Any] = {
        "system": system,
        "size": size,
        "accepted_per_s": delivered,
        "delivered_per_s": delivered,
        "accept_p50_ms": 10.0,
        "accept_p99_ms": 40.0,
        "e2e_p50_ms": 100.0,
        "e2e_p99_ms": 200.0,
        "missing_messages": 0,
        "duplicate_recipients": 0,
        "dkim_signed": 100,
        "processes": processes,
    }
    figures.update(over)
    return figures


def test_order_starts_each_round_with_the_next_system() -> None:
    assert order(0) == SYSTEMS
    assert order(1) == (*SYSTEMS[1:], SYSTEMS[0])
    assert order(len(SYSTEMS)) == SYSTEMS
    assert {order(r)[0] for r in range(len(SYSTEMS))} == set(SYSTEMS)


def test_median_of_odd_and_even_counts() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5


def test_ratio_rounds_and_refuses_a_zero_denominator() -> None:
    assert ratio(2.0, 3.0) == 0.67
    assert ratio(1.0, 0.0) is None


def test_system_figures_take_medians_sums_and_peaks() -> None:
    runs = [
        run("postfix", 1024, 300.0, missing_messages=1, cpu={"postfix": 1.0}),
        run("postfix", 1024, 500.0, duplicate_recipients=2, cpu={"postfix": 3.0}),
        run("postfix", 1024, 400.0, cpu={"postfix": 2.0}),
    ]
    runs[1]["processes"]["postfix"]["peak_rss_mib"] = [70.0, 5.0]
    figures = system_figures(runs)
    assert figures["rounds"] == 3
    assert figures["delivered_per_s"] == 400.0
    assert figures["missing_messages"] == 1
    assert figures["duplicate_recipients"] == 2
    assert figures["cpu_ms_per_msg"]["postfix"] == 2.0
    # The sink's and the load generator's CPU are the harness's, not the system's.
    assert figures["cpu_ms_per_msg_total"] == 2.0
    assert figures["peak_rss_mib"]["postfix"] == 70.0
    assert figures["dkim_signed"] == 300


def test_system_figures_total_cpu_adds_every_process_of_the_system() -> None:
    runs = [run("postline-kafka", 1024, 400.0, cpu={"ingest": 0.5, "signer": 1.0, "kafka": 0.75})]
    assert system_figures(runs)["cpu_ms_per_msg_total"] == 2.25


def test_dkim_signed_is_unknown_when_any_round_could_not_tell() -> None:
    runs = [run("postfix", 1024, 1.0), run("postfix", 1024, 1.0, dkim_signed=None)]
    assert system_figures(runs)["dkim_signed"] is None


def test_summarise_groups_by_size_and_gives_every_ratio() -> None:
    rates = {"postline-kafka": 600.0, "postline-embedded": 300.0, "postfix": 400.0}
    rates["postfix-opendkim"] = 200.0
    runs = [run(name, size, rate) for size in (1024, 51200) for name, rate in rates.items()]
    runs.append(run("postfix", 51200, 800.0))  # a second round at 50 KB only
    out = summarise(runs)
    assert list(out) == ["1024", "51200"]
    small = out["1024"]
    assert set(small["systems"]) == set(SYSTEMS)
    assert set(small["ratios"]) == {f"{a}/{b}" for a, b in RATIOS}
    assert small["ratios"]["postline-kafka/postfix"]["delivered_per_s"] == 1.5
    assert small["ratios"]["postline-kafka/postfix-opendkim"]["delivered_per_s"] == 3.0
    assert small["ratios"]["postline-embedded/postfix"]["delivered_per_s"] == 0.75
    assert small["ratios"]["postline-embedded/postfix-opendkim"]["delivered_per_s"] == 1.5
    assert out["51200"]["systems"]["postfix"]["delivered_per_s"] == 600.0
    assert out["51200"]["ratios"]["postline-kafka/postfix"]["delivered_per_s"] == 1.0


def test_ratios_leave_out_pairs_with_a_missing_system() -> None:
    out = summarise([run("postline-kafka", 1024, 1.0), run("postfix", 1024, 2.0)])
    assert list(out["1024"]["ratios"]) == ["postline-kafka/postfix"]


def test_table_names_every_system_process_and_ratio() -> None:
    runs = [
        run("postline-kafka", 1024, 600.0, cpu={"ingest": 0.5, "kafka": 1.0}),
        run("postfix-opendkim", 1024, 200.0, cpu={"postfix": 2.0, "opendkim": 2.5}),
    ]
    text = table(summarise(runs))
    assert "message size 1 KB" in text
    assert "postline-kafka" in text and "postfix-opendkim" in text
    assert "opendkim" in text and "2.5 ms 50 MiB" in text
    assert "postline-kafka/postfix-opendkim: delivered_per_s 3x" in text

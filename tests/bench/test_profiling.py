"""The py-spy summary (``bench/profiling.py``) on a hand-made collapsed-stack file: self and
inclusive time, samples of a child process (the signer's workers) counted to the child, and
each process's own top functions."""

from __future__ import annotations

from pathlib import Path

from bench.profiling import summarise

PARENT = 'process 10:"postline signer"'
WORKER = 'process 11:"python3 -B -c from multiprocessing.spawn import spawn_main; spawn_main()"'
FOLDED = f"""\
{PARENT};thread (0x1);run (runtime.py:10);sign (dkim.py:20);sign_digest (keys.py:30) 6
{PARENT};{WORKER};thread (0x2);work (pool.py:5);sub (re/__init__.py:185) 3
{PARENT};thread (0x1);run (runtime.py:10);select (selectors.py:468) 1
"""


def test_summary_counts_self_inclusive_and_child_processes(tmp_path: Path) -> None:
    folded = tmp_path / "signer.folded"
    folded.write_text(FOLDED)
    text = summarise(folded)
    assert text.startswith("samples: 10\n")
    assert f"   70.0%  {PARENT}" in text
    assert f"   30.0%  {WORKER}" in text
    self_part, rest = text.split("inclusive time")
    inclusive_part, parent_part, worker_part = rest.split("self time in ")
    assert "   60.0%  sign_digest (keys.py)" in self_part
    assert "   30.0%  sub (__init__.py)" in self_part
    assert "   70.0%  run (runtime.py)" in inclusive_part
    assert "spawn_main()" not in inclusive_part  # the command line's ";" splits no frame
    # per process, largest first, as shares of all samples
    assert parent_part.startswith(f"{PARENT} (70.0%, top 10):")
    assert "   60.0%  sign_digest (keys.py)" in parent_part
    assert "   10.0%  select (selectors.py)" in parent_part
    assert "sub (" not in parent_part
    assert worker_part.startswith(f"{WORKER} (30.0%, top 10):")
    assert worker_part.splitlines()[1:] == ["   30.0%  sub (__init__.py)"]


def test_a_long_command_line_keeps_both_ends(tmp_path: Path) -> None:
    child = 'process 12:"python3 -m shared.runtime.child --report-fd 15 --config /tmp/' + (
        "x" * 80 + '/postline.toml deliverer"'
    )
    folded = tmp_path / "run.folded"
    folded.write_text(f"{PARENT};{child};thread (0x3);deliver (attempt.py:9) 2\n")
    text = summarise(folded)
    label = next(line.strip()[6:].strip() for line in text.splitlines() if "process 12" in line)
    assert label.startswith('process 12:"python3 -m shared.runtime')
    assert label.endswith('postline.toml deliverer"')
    assert " ... " in label and len(label) <= 90


def test_one_process_has_no_per_process_section(tmp_path: Path) -> None:
    folded = tmp_path / "one.folded"
    folded.write_text(f"{PARENT};thread (0x1);run (runtime.py:10) 4\n")
    assert "self time in" not in summarise(folded)

"""The py-spy summary (``bench/profiling.py``) on a hand-made collapsed-stack file: self and
inclusive time, and samples of a child process (the signer's workers) counted to the child."""

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
    self_part, inclusive_part = text.split("inclusive time")
    assert "   60.0%  sign_digest (keys.py)" in self_part
    assert "   30.0%  sub (__init__.py)" in self_part
    assert "   70.0%  run (runtime.py)" in inclusive_part
    assert "spawn_main()" not in inclusive_part  # the command line's ";" splits no frame

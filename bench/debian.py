"""Installing and purging a Debian package for one benchmark run (root, non-interactive).

``make bench-compare`` installs the reference MTA's packages only when missing and purges
them again afterwards, so the machine is left as it was found. apt runs in a session of its
own: a signal to the benchmark's process group must not cut dpkg short.
"""

from __future__ import annotations

import os
import subprocess


def _apt(*args: str, check: bool) -> None:
    subprocess.run(
        ["apt-get", *args],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        check=check,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )


def install(*packages: str) -> None:
    """Install ``packages`` without recommended ones; raises when apt fails."""
    _apt("install", "-y", "-q", "--no-install-recommends", *packages, check=True)


def purge(*packages: str) -> None:
    """Remove ``packages`` and what they alone pulled in (best effort)."""
    _apt("purge", "-y", "-q", "--autoremove", *packages, check=False)

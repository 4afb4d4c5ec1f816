"""Postline's installed version, on its own so the CLI can print it without the metrics stack."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    """Postline's installed version (``0+unknown`` when run from a bare source tree)."""
    try:
        return version("postline")
    except PackageNotFoundError:
        return "0+unknown"

"""The test CA now lives in ``testing.pki`` (the end-to-end harness uses it too)."""

from __future__ import annotations

from testing.pki import Pki, make_pki

__all__ = ["Pki", "make_pki"]

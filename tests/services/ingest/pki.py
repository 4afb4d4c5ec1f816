"""The test CA now lives in ``tests.support.pki`` (the end-to-end harness uses it too)."""

from __future__ import annotations

from tests.support.pki import Pki, make_pki

__all__ = ["Pki", "make_pki"]

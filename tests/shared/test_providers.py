"""The provider map: MX host suffixes to a bounded set of names."""

from __future__ import annotations

import pytest

from shared.providers import OTHER, PROVIDER_NAMES, provider_for_host


@pytest.mark.parametrize(
    ("host", "provider"),
    [
        ("aspmx.l.google.com", "google"),
        ("ALT1.ASPMX.L.GOOGLE.COM.", "google"),
        ("example-com.mail.protection.outlook.com", "microsoft"),
        ("mta7.am0.yahoodns.net", "yahoo"),
        ("mx01.mail.icloud.com", "apple"),
        ("mx1.example.test", OTHER),
        ("notgoogle.com", OTHER),  # suffixes match on label boundaries only
        ("", OTHER),
    ],
)
def test_provider_for_host(host: str, provider: str) -> None:
    assert provider_for_host(host) == provider


def test_names_are_bounded() -> None:
    assert len(PROVIDER_NAMES) < 30
    assert OTHER in PROVIDER_NAMES

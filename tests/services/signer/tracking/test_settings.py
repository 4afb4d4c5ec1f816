"""Which level decides what a message tracks, and its host (settings.py)."""

from __future__ import annotations

import pytest

from services.signer.config import TrackingConfig
from services.signer.tracking.settings import Wanted, from_field, resolve, tag_value, valid_host
from shared.wire.records import TrackingSettings

OFF = TrackingConfig(host="t.relay.test")
ON = TrackingConfig(host="t.relay.test", opens=True, clicks=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("opens", TrackingSettings(opens=True, clicks=False)),
        ("clicks", TrackingSettings(opens=False, clicks=True)),
        ("opens,clicks", TrackingSettings(opens=True, clicks=True)),
        (" Clicks ; OPENS ", TrackingSettings(opens=True, clicks=True)),
        ("all", TrackingSettings(opens=True, clicks=True)),
        ("none", TrackingSettings(opens=False, clicks=False)),
        ("off", TrackingSettings(opens=False, clicks=False)),
        ("text_clicks", TrackingSettings(opens=False, clicks=True, text_clicks=True)),
        ("banana", None),
        ("", None),
    ],
)
def test_the_field_names_what_to_track(value: str, expected: TrackingSettings | None) -> None:
    assert from_field(value) == expected


def test_the_tag_is_found_whatever_its_case() -> None:
    assert tag_value({"Track": "opens"}) == "opens"
    assert tag_value({"x-postline-track": "clicks"}) == "clicks"
    assert tag_value({"bulk": "yes"}) is None


def test_off_by_default() -> None:
    assert resolve(None, None, None, TrackingConfig()) == Wanted()
    assert not resolve(None, None, None, OFF).any


def test_field_over_domain_over_tenant_over_defaults() -> None:
    domain = TrackingSettings(opens=False)  # clicks: inherit
    tenant = TrackingSettings(opens=True, clicks=True, text_clicks=True)
    assert resolve(None, None, None, ON) == Wanted(True, True, False, "t.relay.test")
    assert resolve(None, None, tenant, OFF) == Wanted(True, True, True, "t.relay.test")
    assert resolve(None, domain, tenant, OFF) == Wanted(False, True, True, "t.relay.test")
    # The field decides opens and clicks outright; text_clicks stays the tenant's.
    assert resolve("opens", domain, tenant, OFF) == Wanted(True, False, False, "t.relay.test")
    assert resolve("none", domain, tenant, ON) == Wanted(host="t.relay.test")
    assert resolve("clicks", None, tenant, OFF).text_clicks
    assert resolve("gibberish", domain, tenant, OFF) == resolve(None, domain, tenant, OFF)


def test_host_from_domain_else_tenant_else_global() -> None:
    domain = TrackingSettings(host="Links.Shop.Test.")
    tenant = TrackingSettings(host="t.tenant.test")
    assert resolve("all", domain, tenant, ON).host == "links.shop.test"
    assert resolve("all", TrackingSettings(), tenant, ON).host == "t.tenant.test"
    assert resolve("all", None, None, ON).host == "t.relay.test"
    assert resolve("all", None, None, TrackingConfig()).host == ""


@pytest.mark.parametrize(
    ("host", "valid"),
    [
        ("t.relay.test", True),
        ("localhost:8443", True),
        ("xn--bcher-kva.test", True),
        ("", False),
        ('t.test"><script>', False),
        ("t.test/path", False),
        ("-bad.test", False),
        ("t.test\n", False),
    ],
)
def test_hosts_are_checked_before_they_reach_a_url(host: str, valid: bool) -> None:
    assert valid_host(host) is valid

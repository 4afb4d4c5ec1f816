"""What a valid tenant field is (``shared.tenant_fields``): open and click tracking."""

from __future__ import annotations

import pytest

from shared import tenant_fields
from shared.errors import TenantInvalid
from shared.wire.records import TenantSettings, TrackingSettings


def test_switches_take_words_and_json_values() -> None:
    changed = tenant_fields.tracking(
        TrackingSettings(opens=True, clicks=True),
        {"opens": "OFF", "clicks": "inherit", "text_clicks": True},
    )
    assert changed == TrackingSettings(opens=False, clicks=None, text_clicks=True)
    # JSON null is inherit, as the admin API sends it; what is not named stays.
    host = TrackingSettings(host="t.shop.example")
    again = tenant_fields.tracking(host, {"opens": None})
    assert again == host


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("click.shop.example", "click.shop.example"),
        (" Click.Shop.Example. ", "click.shop.example"),
        ("links-1.e.example.co.uk", "links-1.e.example.co.uk"),
        ("bücher.example", "xn--bcher-kva.example"),  # A-labels, as DNS and TLS need them
        ("", ""),  # inherit
    ],
)
def test_tracking_hosts(value: str, name: str) -> None:
    assert tenant_fields.tracking_host(value) == name


@pytest.mark.parametrize(
    "value",
    [
        "https://click.shop.example",
        "click.shop.example/path",
        "click.shop.example:8443",
        "192.0.2.10",
        "[2001:db8::1]",
        "localhost",
        "under_score.example",
        "-lead.example",
        "trail-.example",
        "a..example",
        "x" * 64 + ".example",
        ("a" * 60 + ".") * 5 + "example",  # past 253 characters
        "sp ace.example",
    ],
)
def test_what_is_not_a_tracking_host(value: str) -> None:
    with pytest.raises(TenantInvalid, match=r"^settings\.tracking\.host: "):
        tenant_fields.tracking_host(value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"opens": "yes"}, r"^settings\.tracking\.opens: expected on, off or inherit"),
        ({"clicks": 1}, r"^settings\.tracking\.clicks: expected on, off or inherit"),
        ({"pixels": "on"}, r"^settings\.tracking\.pixels: no such setting \(known: clicks, host"),
        ({"host": 7}, r"^settings\.tracking\.host: expected a host name"),
    ],
)
def test_bad_tracking_values_name_the_field(values: dict[str, object], message: str) -> None:
    with pytest.raises(TenantInvalid, match=message):
        tenant_fields.tracking(TrackingSettings(), values)


def test_a_domains_errors_name_the_domain() -> None:
    with pytest.raises(TenantInvalid, match=r"^domains\.shop\.example\.tracking\.host: "):
        tenant_fields.tracking(TrackingSettings(), {"host": "no"}, "domains.shop.example.tracking")


def test_settings_change_only_the_tracking_fields_given() -> None:
    current = TenantSettings(scanning="tag", tracking=TrackingSettings(opens=True, host="a.b.c"))
    changed = tenant_fields.settings(current, {"tracking": {"clicks": "on"}})
    assert changed.tracking == TrackingSettings(opens=True, clicks=True, host="a.b.c")
    assert changed.scanning == "tag"
    with pytest.raises(TenantInvalid, match=r"^settings\.tracking: expected an object"):
        tenant_fields.settings(current, {"tracking": "on"})

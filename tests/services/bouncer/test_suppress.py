"""Suppression decisions, the bouncer config section and the metric declarations."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.bouncer.config import load_bouncer_config
from services.bouncer.metrics import BouncerMetrics
from services.bouncer.suppress import SuppressionAdmin, SuppressionPolicy, export_csv
from shared.addresshash import address_hash
from shared.bounceclass.rules import BounceClass
from shared.bus.embedded import EmbeddedBus
from shared.config import EmbeddedConfig, load_config
from shared.errors import ConfigError
from shared.secretfile import read_secret
from shared.wire.records import Suppression, SuppressionReason
from shared.wire.tokens import UnsubscribeToken
from shared.wire.topics import SUPPRESSIONS

DAY = 86400.0


def test_hard_bounce_and_complaint_suppress_at_once() -> None:
    policy = SuppressionPolicy(soft_limit=3, soft_window=7 * DAY)
    hard = policy.decide("Gone@Example.org", BounceClass.HARD, 1.0)
    assert hard is not None
    assert (hard.address, hard.reason) == ("gone@example.org", SuppressionReason.HARD_BOUNCE)
    complaint = policy.decide("a@example.org", BounceClass.COMPLAINT, 1.0)
    assert complaint is not None and complaint.reason is SuppressionReason.COMPLAINT


@pytest.mark.parametrize("klass", [BounceClass.BLOCK, BounceClass.AUTO_REPLY, BounceClass.UNKNOWN])
def test_block_auto_reply_and_unknown_never_suppress(klass: BounceClass) -> None:
    policy = SuppressionPolicy(soft_limit=1, soft_window=DAY)
    assert policy.decide("a@example.org", klass, 1.0) is None


def test_soft_bounces_suppress_after_n_within_the_window() -> None:
    policy = SuppressionPolicy(soft_limit=3, soft_window=7 * DAY)
    assert policy.decide("full@example.org", BounceClass.SOFT, 0.0) is None
    assert policy.decide("full@example.org", BounceClass.SOFT, 1 * DAY) is None
    # The first bounce left the window: still two within it.
    assert policy.decide("full@example.org", BounceClass.SOFT, 7.5 * DAY) is None
    record = policy.decide("FULL@example.org", BounceClass.SOFT, 7.8 * DAY)
    assert record is not None and record.reason is SuppressionReason.SOFT_BOUNCES


def test_a_bounce_s_reason_goes_on_the_entry_and_the_export() -> None:
    policy = SuppressionPolicy(soft_limit=3, soft_window=DAY)
    record = policy.decide(
        "Gone@Example.org",
        BounceClass.HARD,
        1.0,
        "550 5.1.1 no such user",
        bounce_reason="userunknown",
    )
    assert record is not None
    assert (record.reason, record.bounce_reason) == (SuppressionReason.HARD_BOUNCE, "userunknown")
    header, row = export_csv([record]).splitlines()
    assert header.endswith(",tenant,bounce_reason,method,proof,message_id,address_hash")
    assert row.endswith(",userunknown,,,,")


def test_unsubscribe_is_scoped_to_the_sender_domain() -> None:
    policy = SuppressionPolicy(soft_limit=3, soft_window=DAY)
    token = UnsubscribeToken(recipient="Reader@Example.org", scope="Shop.Example", message_id="m")
    record = policy.unsubscribe(token, 5.0, via="http")
    assert (record.address, record.scope, record.reason) == (
        "reader@example.org",
        "shop.example",
        SuppressionReason.UNSUBSCRIBE,
    )
    assert export_csv([record]).splitlines()[1].startswith("reader@example.org,shop.example,")


def test_config_is_strict_and_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "postline.toml"
    path.write_text("[bouncer]\nsoft_bounce_limit = 0\n")
    with pytest.raises(ConfigError) as err:
        load_bouncer_config(load_config(path, environ={}))
    assert err.value.key == "bouncer.soft_bounce_limit"
    path.write_text("[bouncer.dsn]\npostmastr = 'x@y'\n")
    with pytest.raises(ConfigError) as err:
        load_bouncer_config(load_config(path, environ={}))
    assert err.value.key == "bouncer.dsn.postmastr"
    path.write_text("[bouncer]\nsoft_bounce_window = '3d'\nbounce_domain = 'b.example'\n")
    section = load_bouncer_config(load_config(path, environ={}))
    assert (section.soft_bounce_window, section.bounce_domain) == (3 * DAY, "b.example")


def test_short_or_missing_secret_is_a_config_error(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(b"tiny\n")
    with pytest.raises(ConfigError, match="shorter than 16 bytes"):
        read_secret(short, "bouncer.secret_file", "t.toml")
    with pytest.raises(ConfigError, match="cannot read"):
        read_secret(tmp_path / "absent.key", "bouncer.secret_file", "t.toml")


def test_every_metric_has_help_text() -> None:
    registry = CollectorRegistry()
    BouncerMetrics(registry)
    families = [m for m in registry.collect() if m.name.startswith("postline_bouncer")]
    assert len(families) == 8
    for family in families:
        assert len(family.documentation) > 30, family.name


async def test_lookup_finds_an_erased_address_by_its_keyed_hash(tmp_path: Path) -> None:
    """After ``postline gdpr erase`` the admin lookup still answers "suppressed" for the
    address (GET /admin/suppressions/<address>), given the key; never another address."""
    key = b"0123456789abcdef0123456789abcdef"
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db", partitions=2))
    await bus.start()
    try:
        erased = Suppression(
            address="",
            address_hash=address_hash(key, "gone@dest.test"),
            reason=SuppressionReason.UNSUBSCRIBE,
            at=1.0,
            scope="news.example",
        )
        await bus.publish([SUPPRESSIONS.out(erased)])
        found = await SuppressionAdmin(bus, "api", hash_key=key).lookup(" Gone@Dest.test")
        assert [(s.reason, s.scope) for s in found] == [
            (SuppressionReason.UNSUBSCRIBE, "news.example")
        ]
        assert await SuppressionAdmin(bus, "api", hash_key=key).lookup("other@dest.test") == []
        assert await SuppressionAdmin(bus, "api").lookup("gone@dest.test") == []
    finally:
        await bus.close()

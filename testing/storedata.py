"""The events the query tests insert: two tenants, a few messages, every counted kind.

Times are fixed (2026-12-06, UTC) so no test depends on the clock."""

from __future__ import annotations

from typing import Any

from testing.storerows import event_row

#: 2026-12-06T00:00:00Z.
DAY = 1796515200.0
NOW = DAY + 86400  # the end of that day: the tests' clock
H = 3600.0

MSG_A = "a1b2c3d4" + "0" * 24  # shop, spring-sale, two recipients
MSG_A2 = "a1b2c3d4" + "1" * 24  # shop, shares 8 hex digits with MSG_A
MSG_B = "b0b0b0b0" + "2" * 24  # other tenant


def shop_events() -> list[dict[str, Any]]:
    """The ``shop`` tenant's events."""
    sale = {"campaign": "spring-sale", "list": "vip"}
    common: dict[str, Any] = {"tenant": "shop", "sender": "News@Shop.example", "tags": sale}
    a = {**common, "message_id": MSG_A, "subject": "Spring sale: 20% off"}
    return [
        event_row(at=DAY + 1 * H, kind="accepted", **a),
        event_row(
            at=DAY + 1 * H + 5,
            kind="delivered",
            recipient="Ann@Gmail.com",
            provider="google",
            code=250,
            **a,
        ),
        event_row(
            at=DAY + 1 * H + 6,
            kind="deferred",
            recipient="bob@outlook.com",
            provider="microsoft",
            code=451,
            reason="greylisted",
            classification="soft",
            **a,
        ),
        event_row(
            at=DAY + 2 * H,
            kind="bounced",
            recipient="bob@outlook.com",
            provider="microsoft",
            code=550,
            status="5.1.1",
            classification="hard",
            reason="userunknown",
            **a,
        ),
        event_row(at=DAY + 3 * H, kind="opened", recipient="ann@gmail.com", **a),
        event_row(at=DAY + 3 * H + 1, kind="opened", recipient="ann@gmail.com", machine=True, **a),
        event_row(
            at=DAY + 3 * H + 2,
            kind="clicked",
            recipient="ann@gmail.com",
            url="https://shop.example/sale",
            **a,
        ),
        event_row(at=DAY + 4 * H, kind="complained", recipient="ann@gmail.com", **a),
        event_row(
            at=DAY + 5 * H,
            kind="accepted",
            tenant="shop",
            sender="billing@shop.example",
            message_id=MSG_A2,
            subject="Your invoice",
            tags={"kind": "invoice"},
        ),
        event_row(
            at=DAY + 5 * H + 3,
            kind="delivered",
            tenant="shop",
            sender="billing@shop.example",
            message_id=MSG_A2,
            subject="Your invoice",
            recipient="ann@gmail.com",
            provider="google",
            tags={"kind": "invoice"},
        ),
        event_row(
            at=DAY + 6 * H,
            kind="bounced",
            tenant="shop",
            sender="billing@shop.example",
            message_id=MSG_A2,
            recipient="carl@yahoo.com",
            provider="yahoo",
            classification="soft",
            reason="mailboxfull",
            tags={"kind": "invoice"},
        ),
    ]


def other_events() -> list[dict[str, Any]]:
    """Another tenant's events, one to the same recipient as ``shop``'s."""
    b: dict[str, Any] = {
        "tenant": "other",
        "sender": "hi@other.example",
        "message_id": MSG_B,
        "subject": "Spring news",
    }
    return [
        event_row(at=DAY + 2 * H, kind="accepted", **b),
        event_row(
            at=DAY + 2 * H + 1, kind="delivered", recipient="ann@gmail.com", provider="google", **b
        ),
    ]


def bulk_events(count: int) -> list[dict[str, Any]]:
    """``count`` deliveries of shop's, one second apart (for pagination)."""
    return [
        event_row(
            at=DAY + 10 * H + i,
            kind="delivered",
            tenant="shop",
            sender="bulk@shop.example",
            message_id=f"{i:032x}",
            recipient=f"r{i}@example.com",
            provider="other",
        )
        for i in range(count)
    ]

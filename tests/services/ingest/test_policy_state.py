"""What the policy state answers, pinned at its edges: whose mail a session sends, which
sender domains a login may use (verified ones only), paused domains, the per-tenant session
count at its limit, the trusted networks (an unparseable client address is never trusted:
the anti-open-relay guard), and the state's tables built from the config (pure logic)."""

from __future__ import annotations

import pytest

from services.ingest.auth import User
from services.ingest.config import IngestConfig, LimitsConfig, ListenerConfig, RateConfig
from services.ingest.policy.base import Decision, PolicyState, SessionInfo, Transaction
from services.ingest.replies import Reply
from shared.credential_holds import HeldCredentials
from shared.suppressions import SuppressionTable
from shared.tenants import TenantTable
from shared.wire.records import (
    SendingDomain,
    Tenant,
    TenantLimits,
    TenantState,
    TenantStatus,
)
from shared.wire.topics import TENANTS

RELAY = ListenerConfig(name="relay", mode="relay")
PAUSED = TenantStatus(state=TenantState.PAUSED, why="complaints")


def _tenants(*tenants: Tenant) -> TenantTable:
    table = TenantTable()
    for tenant in tenants:
        table.apply(tenant.id.encode(), TENANTS.encode(tenant))
    return table


SHOP = Tenant(
    id="shop",
    domains=(
        SendingDomain(name="shop.example", verified=True),
        SendingDomain(name="news.shop.example", verified=True, status=PAUSED),
        SendingDomain(name="new.example"),  # not verified yet
    ),
    limits=TenantLimits(sessions=2),
)
OTHER = Tenant(id="other", domains=(SendingDomain(name="unverified.example"),))


def _state(**kw: object) -> PolicyState:
    config = IngestConfig(listeners=[RELAY], **kw)  # type: ignore[arg-type]
    return PolicyState.create(config, SuppressionTable(), _tenants(SHOP, OTHER))


def _session(user: User | None = None) -> SessionInfo:
    return SessionInfo(ip="192.0.2.9", port=25, listener=RELAY, user=user)


def test_a_decision_has_no_retry_after_unless_given() -> None:
    decision = Decision(Reply(code=550, enhanced="5.7.1", text="no"), "x")
    assert (decision.drop, decision.retry_after) == (False, 0.0)


def test_a_transaction_starts_ascii_for_the_default_tenant() -> None:
    txn = Transaction(id="1", mail_from="a@b.example")
    assert (txn.smtputf8, txn.tenant, txn.credential, txn.rcpt_to) == (False, "default", "", [])


@pytest.mark.parametrize(
    ("mail_from", "domain"),
    [
        ("a@Shop.EXAMPLE", "shop.example"),
        ("", ""),
        ("postmaster", ""),
        ("a@b@c.example", "c.example"),
    ],
)
def test_sender_domain(mail_from: str, domain: str) -> None:
    assert Transaction(id="1", mail_from=mail_from).sender_domain == domain


def test_the_tables_come_from_the_config() -> None:
    st = PolicyState.create(
        IngestConfig(
            listeners=[RELAY],
            trusted_networks=["10.0.0.0/8"],
            limits=LimitsConfig(auth_failures=1),
            rate=RateConfig(per_user=1.0, per_user_burst=1, per_ip=1.0, per_ip_burst=1),
        ),
        SuppressionTable(),
    )
    assert st.trusted("10.1.2.3") and not st.trusted("192.0.2.1")
    assert len(st.tenants) == 0  # none given: an empty table of its own
    assert st.user_rates.take("alice") and not st.user_rates.take("alice")
    assert st.ip_rates.take("192.0.2.1") and not st.ip_rates.take("192.0.2.1")
    holds = HeldCredentials()
    given = PolicyState.create(IngestConfig(listeners=[RELAY]), SuppressionTable(), None, holds)
    assert given.credential_holds is holds


def test_the_tenant_table_given_is_the_one_consulted() -> None:
    table = TenantTable()
    st = PolicyState.create(IngestConfig(listeners=[RELAY]), SuppressionTable(), table)
    table.apply(b"shop", TENANTS.encode(SHOP))  # followed live
    assert st.tenant("shop") == SHOP


def test_whose_mail_it_is() -> None:
    st = _state()
    login = User("app", frozenset(), tenant="other")
    assert st.tenant_for(_session(login), "shop.example") == "other"  # the login decides
    assert st.tenant_for(_session(), "shop.example") == "shop"  # a verified domain's owner
    assert st.tenant_for(_session(), "new.example") == "default"  # not verified: not theirs
    assert st.tenant_for(_session(), "unknown.example") == "default"
    assert st.tenant_for(_session(), "") == "default"


def test_a_tenant_login_may_use_its_verified_domains_only() -> None:
    st = _state()
    login = User("shop-app", frozenset(), tenant="shop")
    assert st.may_send_from(login, "Shop.Example.") is True
    assert st.may_send_from(login, "new.example") is False  # not verified
    assert st.may_send_from(login, "unverified.example") is False  # another tenant's
    assert st.may_send_from(login, "elsewhere.example") is False


def test_a_restricted_login_may_use_only_its_listed_verified_domains() -> None:
    st = _state()
    login = User("shop-news", frozenset({"news.shop.example", "new.example"}), tenant="shop")
    assert st.may_send_from(login, "news.shop.example") is True
    assert st.may_send_from(login, "shop.example") is False  # verified, but not listed
    assert st.may_send_from(login, "new.example") is False  # listed, but not verified


def test_a_users_file_user_may_use_its_listed_domains() -> None:
    st = _state()
    alice = User("alice", frozenset({"example.com"}))
    assert st.may_send_from(alice, "Example.COM.") is True
    assert st.may_send_from(alice, "shop.example") is False  # verified for shop, not alice's


def test_paused_domain() -> None:
    st = _state()
    paused = st.paused_domain("shop", "News.Shop.Example.")
    assert paused is not None and paused.name == "news.shop.example"
    assert st.paused_domain("shop", "shop.example") is None  # active
    assert st.paused_domain("other", "news.shop.example") is None  # not that tenant's
    assert st.paused_domain("shop", "elsewhere.example") is None


def test_sessions_per_tenant_stop_exactly_at_the_limit() -> None:
    st = _state()
    assert st.start_tenant_session("shop") is True
    assert st.start_tenant_session("shop") is True
    assert st.start_tenant_session("shop") is False  # limit 2
    assert st.sessions_per_tenant["shop"] == 2  # the refused one is not counted
    st.end_tenant_session("shop")
    assert st.sessions_per_tenant["shop"] == 1
    assert st.start_tenant_session("shop") is True
    st.end_tenant_session("shop")
    st.end_tenant_session("shop")
    assert "shop" not in st.sessions_per_tenant  # no count left behind at zero


def test_no_session_limit_counts_without_refusing() -> None:
    st = _state()
    for _ in range(50):
        assert st.start_tenant_session("other") is True
    assert st.sessions_per_tenant["other"] == 50


@pytest.mark.parametrize("ip", ["", "not-an-ip", "10.0.0.256", "10.0.0.0/8"])
def test_an_unparseable_address_is_never_trusted(ip: str) -> None:
    st = _state(trusted_networks=["0.0.0.0/0", "::/0"])
    assert st.trusted(ip) is False


def test_trusted_networks() -> None:
    st = _state(trusted_networks=["10.0.0.0/8", "2001:db8::/32"])
    assert st.trusted("10.255.0.1") is True
    assert st.trusted("2001:db8::1") is True
    assert st.trusted("11.0.0.1") is False
    assert _state().trusted("127.0.0.1") is False  # no trusted networks: nobody

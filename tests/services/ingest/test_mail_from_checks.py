"""The MAIL FROM checks (and the tenant's RCPT TO limit) one by one, with the exact reply
each gives: a held credential (451 4.7.1 with a reference and a Retry-After of ten minutes),
a paused tenant and a paused sending domain (550, or 451 with ``paused_reply = "defer"``),
a tenant's recipients per message at the limit (pure logic)."""

from __future__ import annotations

from services.ingest import replies
from services.ingest.auth import User
from services.ingest.config import IngestConfig, ListenerConfig
from services.ingest.policy import mail_from, rcpt_to
from services.ingest.policy.base import PolicyState, SessionInfo, Transaction
from shared import credential_holds
from shared.credential_holds import HeldCredentials
from shared.suppressions import SuppressionTable
from shared.tenants import TenantTable
from shared.wire.records import (
    ControlAction,
    ControlVerb,
    SendingDomain,
    SmtpReply,
    Tenant,
    TenantLimits,
    TenantSettings,
    TenantState,
    TenantStatus,
)
from shared.wire.topics import CONTROL, TENANTS

RELAY = ListenerConfig(name="relay", mode="relay")
PAUSED = TenantStatus(state=TenantState.PAUSED, why="complaints")
DISABLED = TenantStatus(state=TenantState.DISABLED)
DOMAINS = (
    SendingDomain(name="shop.example", verified=True),
    SendingDomain(name="news.shop.example", verified=True, status=PAUSED),
    SendingDomain(name="old.shop.example", verified=True, status=DISABLED),
)


def _state(*tenants: Tenant, holds: HeldCredentials | None = None) -> PolicyState:
    table = TenantTable()
    for tenant in tenants:
        table.apply(tenant.id.encode(), TENANTS.encode(tenant))
    return PolicyState.create(IngestConfig(listeners=[RELAY]), SuppressionTable(), table, holds)


def _session() -> SessionInfo:
    return SessionInfo("192.0.2.9", 25, RELAY, user=User("app", frozenset(), tenant="shop"))


def _txn(mail_from: str = "a@shop.example", **fields: object) -> Transaction:
    txn = Transaction(id="T1", mail_from=mail_from, tenant="shop", credential="app")
    for name, value in fields.items():
        setattr(txn, name, value)
    return txn


def _held(login: str) -> HeldCredentials:
    holds = HeldCredentials()
    action = ControlAction(
        verb=ControlVerb.CREDENTIAL_HOLD, target=credential_holds.target(login), at=1.0
    )
    holds.apply(credential_holds.key(login).encode(), CONTROL.encode(action))
    return holds


def test_a_held_credential_is_deferred_with_a_reference() -> None:
    st = _state(Tenant(id="shop", domains=DOMAINS), holds=_held("app"))
    decision = mail_from.credential_held(st, _session(), _txn())
    assert decision is not None
    assert decision.check == "credential_held"
    assert decision.reply == SmtpReply(
        code=451, enhanced="4.7.1", text=f"{credential_holds.REFUSAL} (ref T1)"
    )
    assert decision.retry_after == 600.0
    assert mail_from.credential_held(st, _session(), _txn(credential="other")) is None
    assert mail_from.credential_held(st, _session(), _txn(credential="")) is None


def test_an_active_tenant_passes() -> None:
    st = _state(Tenant(id="shop", domains=DOMAINS))
    assert mail_from.tenant_state(st, _session(), _txn()) is None


def test_a_paused_tenant_is_refused_or_deferred_as_it_chose() -> None:
    refused = _state(Tenant(id="shop", status=PAUSED))
    decision = mail_from.tenant_state(refused, _session(), _txn())
    assert decision is not None and decision.check == "tenant_paused"
    assert decision.reply == SmtpReply(
        code=550, enhanced="5.7.1", text="sending paused for this account: complaints"
    )
    deferred = _state(
        Tenant(id="shop", status=PAUSED, settings=TenantSettings(paused_reply="defer"))
    )
    decision = mail_from.tenant_state(deferred, _session(), _txn())
    assert decision is not None and (decision.reply.code, decision.reply.enhanced) == (
        451,
        "4.7.1",
    )


def test_a_paused_domain_is_refused_naming_it_while_the_others_send() -> None:
    st = _state(Tenant(id="shop", domains=DOMAINS))
    assert mail_from.domain_state(st, _session(), _txn()) is None
    assert mail_from.domain_state(st, _session(), _txn("")) is None  # null reverse-path
    decision = mail_from.domain_state(st, _session(), _txn("a@News.Shop.Example"))
    assert decision is not None and decision.check == "domain_paused"
    assert decision.reply == SmtpReply(
        code=550, enhanced="5.7.1", text="sending paused for domain news.shop.example: complaints"
    )
    disabled = mail_from.domain_state(st, _session(), _txn("a@old.shop.example"))
    assert disabled is not None and disabled.reply.text == (
        "sending paused for domain old.shop.example"
    )


def test_a_paused_domain_of_a_deferring_tenant_is_deferred() -> None:
    tenant = Tenant(id="shop", domains=DOMAINS, settings=TenantSettings(paused_reply="defer"))
    decision = mail_from.domain_state(_state(tenant), _session(), _txn("a@news.shop.example"))
    assert decision is not None and (decision.reply.code, decision.reply.enhanced) == (
        451,
        "4.7.1",
    )


def test_the_checks_run_in_order_and_the_first_decides() -> None:
    tenant = Tenant(id="shop", status=PAUSED, domains=DOMAINS)
    st = _state(tenant, holds=_held("app"))
    decision = mail_from.run(st, _session(), _txn("a@news.shop.example"))
    assert decision is not None and decision.check == "credential_held"
    st = _state(tenant)
    decision = mail_from.run(st, _session(), _txn("a@news.shop.example"))
    assert decision is not None and decision.check == "tenant_paused"


def test_a_tenant_s_recipients_per_message_stop_exactly_at_its_limit() -> None:
    st = _state(Tenant(id="shop", limits=TenantLimits(recipients_per_message=2)))
    txn = _txn()
    assert rcpt_to.tenant_recipients(st, _session(), txn, "a@d.example") is None
    txn.rcpt_to.append("a@d.example")
    assert rcpt_to.tenant_recipients(st, _session(), txn, "b@d.example") is None
    txn.rcpt_to.append("b@d.example")
    decision = rcpt_to.tenant_recipients(st, _session(), txn, "c@d.example")
    assert decision is not None and decision.check == "tenant_recipients"
    assert decision.reply == replies.TENANT_TOO_MANY_RECIPIENTS
    unlimited = _state(Tenant(id="shop"))
    assert rcpt_to.tenant_recipients(unlimited, _session(), txn, "c@d.example") is None

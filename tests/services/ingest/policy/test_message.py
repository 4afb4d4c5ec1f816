"""The DATA checks of ``message.py`` one by one as pure functions, with the exact reply each
gives: bare line ends, field names, the tenant's size, From and Sender of an authenticated
user, a paused sending domain in From, and X-Postline-Deliver-After (clock injected)."""

from __future__ import annotations

from services.ingest.auth import User
from services.ingest.config import IngestConfig, ListenerConfig
from services.ingest.headers import parse
from services.ingest.policy import message
from services.ingest.policy.base import Decision, PolicyState, SessionInfo, Transaction
from shared.suppressions import SuppressionTable
from shared.wire.records import (
    SendingDomain,
    Tenant,
    TenantLimits,
    TenantSettings,
    TenantState,
    TenantStatus,
)
from shared.wire.topics import TENANTS

RELAY = ListenerConfig(name="relay", mode="relay")
ALICE = User("alice", frozenset({"example.com"}))
NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
PAUSED = TenantStatus(state=TenantState.PAUSED, why="complaints")
DOMAINS = (
    SendingDomain(name="shop.example", verified=True),
    SendingDomain(name="news.shop.example", verified=True, status=PAUSED),
)


def state(smuggling: str = "refuse", *tenants: Tenant) -> PolicyState:
    config = IngestConfig(listeners=[RELAY], smuggling=smuggling)  # type: ignore[arg-type]
    st = PolicyState.create(config, SuppressionTable())
    st.clock = lambda: NOW
    for tenant in tenants:
        st.tenants.apply(tenant.id.encode(), TENANTS.encode(tenant))
    return st


def run(
    data: bytes, st: PolicyState | None = None, user: User | None = ALICE, tenant: str = "shop"
) -> Decision | None:
    txn = Transaction(id="m1", mail_from="a@example.com", tenant=tenant)
    session = SessionInfo(ip="192.0.2.9", port=1234, listener=RELAY, user=user)
    return message.run(st or state(), session, txn, data, parse(data))


def reply(data: bytes, st: PolicyState | None = None, **kw: object) -> tuple[str, str]:
    decision = run(data, st, **kw)  # type: ignore[arg-type]
    assert decision is not None, "accepted"
    return decision.check, str(decision.reply)


def mail(head: bytes, body: bytes = b"hi\r\n") -> bytes:
    return head + b"\r\n" + body


OK = mail(b"From: a@example.com\r\nSubject: x\r\n")


def test_a_plain_message_from_an_own_domain_passes() -> None:
    assert run(OK) is None
    assert run(OK, user=None) is None


def test_bare_line_ends_are_refused_unless_normalised() -> None:
    for body in (b"a\nb\r\n", b"a\rb\r\n"):
        data = mail(b"From: a@example.com\r\n", body)
        assert reply(data) == ("smuggling", "550 5.6.0 Bare CR or LF in message not allowed")
        assert run(data, state("normalise")) is None


def test_a_control_character_in_a_field_name_is_refused() -> None:
    data = mail(b"From: a@example.com\r\nX-Bad\x01Name: v\r\n")
    assert reply(data) == ("header_name", "550 5.6.0 Message header is malformed")


def test_a_message_without_a_usable_from_is_refused() -> None:
    for head in (b"Subject: x\r\n", b"From: a@example.com\r\nFrom: b@example.com\r\n"):
        assert reply(mail(head)) == ("from_header", "550 5.6.0 Message has no valid From header")


def test_an_authenticated_user_sends_from_its_own_domains_only() -> None:
    data = mail(b"From: a@example.com, x@bank.test\r\n")
    assert reply(data) == (
        "from_domain",
        "550 5.7.1 From header domain bank.test not allowed for you",
    )
    assert run(data, user=None) is None  # the trusted relay port: no AUTH, no domain check


def test_the_sender_header_of_an_authenticated_user() -> None:
    own = mail(b"From: a@example.com\r\nSender: b@Example.com\r\n")
    assert run(own) is None
    other = mail(b"From: a@example.com\r\nSender: b@bank.test\r\n")
    assert reply(other) == (
        "sender_header",
        "550 5.7.1 Sender header domain bank.test not allowed for you",
    )
    malformed = "550 5.6.0 Message has a malformed Sender header"
    for head in (
        b"Sender: b@example.com\r\nSender: c@example.com\r\n",  # two fields
        b"Sender: b@example.com, c@example.com\r\n",  # two mailboxes
        b"Sender: nobody\r\n",  # no address
    ):
        assert reply(mail(b"From: a@example.com\r\n" + head)) == ("sender_header", malformed)
    assert run(other, user=None) is None


def test_a_paused_sending_domain_in_from_is_refused_or_deferred() -> None:
    shop = Tenant(id="shop", domains=DOMAINS)
    data = mail(b"From: a@News.Shop.Example\r\n")
    assert reply(data, state("refuse", shop), user=None) == (
        "domain_paused",
        "550 5.7.1 sending paused for domain news.shop.example: complaints",
    )
    defer = Tenant(id="shop", domains=DOMAINS, settings=TenantSettings(paused_reply="defer"))
    assert reply(data, state("refuse", defer), user=None) == (
        "domain_paused",
        "451 4.7.1 sending paused for domain news.shop.example: complaints",
    )
    active = mail(b"From: a@shop.example\r\n")
    assert run(active, state("refuse", shop), user=None) is None
    assert run(data, state("refuse", shop), user=None, tenant="other") is None


def test_the_tenants_message_size_counts_up_to_the_limit() -> None:
    limit = len(OK)
    small = Tenant(id="shop", limits=TenantLimits(message_size=limit))
    assert run(OK, state("refuse", small)) is None
    bigger = mail(b"From: a@example.com\r\nSubject: xy\r\n")
    assert reply(bigger, state("refuse", small)) == (
        "tenant_size",
        "552 5.3.4 Message too big for this account",
    )
    unlimited = Tenant(id="shop", limits=TenantLimits(message_size=0))
    assert run(bigger * 100, state("refuse", unlimited)) is None


def test_deliver_after_is_checked_against_the_injected_clock() -> None:
    def head(*values: str) -> bytes:
        fields = b"".join(f"X-Postline-Deliver-After: {v}\r\n".encode() for v in values)
        return mail(b"From: a@example.com\r\n" + fields)

    assert run(head("3600")) is None
    assert run(head("2027-01-15T09:00:00Z")) is None
    assert reply(head("3600", "7200")) == (
        "deliver_after",
        "550 5.6.0 X-Postline-Deliver-After: given more than once",
    )
    assert reply(head("2027-01-15T07:00:00Z")) == (
        "deliver_after",
        "550 5.6.0 X-Postline-Deliver-After: send-at is 3600s in the past",
    )
    assert reply(head("2027-01-19T08:00:00Z")) == (
        "deliver_after",
        "550 5.6.0 X-Postline-Deliver-After: send-at is more than 72h ahead",
    )
    check, text = reply(head("tomorrow"))
    assert check == "deliver_after"
    assert text.startswith("550 5.6.0 X-Postline-Deliver-After: 'tomorrow' is neither")


def test_the_first_check_that_decides_wins() -> None:
    """Order: line ends, field names, size, From, From domain, paused domain, Sender,
    Deliver-After (then signatures and attachments, pinned in their own files)."""
    small = Tenant(id="shop", domains=DOMAINS, limits=TenantLimits(message_size=10))
    st = state("refuse", small)
    bad_all = mail(b"From: a@news.shop.example\r\nX\x01: v\r\nSender: z@bank.test\r\n", b"a\nb")
    assert reply(bad_all, st)[0] == "smuggling"
    no_smuggling = bad_all.replace(b"a\nb", b"ab")
    assert reply(no_smuggling, st)[0] == "header_name"
    named = no_smuggling.replace(b"X\x01: v\r\n", b"")
    assert reply(named, st)[0] == "tenant_size"
    roomy = state("refuse", Tenant(id="shop", domains=DOMAINS))
    assert reply(named, roomy)[0] == "from_domain"  # alice may not use news.shop.example
    assert reply(named, roomy, user=None)[0] == "domain_paused"
    lister = User("bob", frozenset({"news.shop.example"}))
    assert reply(named, roomy, user=lister)[0] == "domain_paused"
    own_from = named.replace(b"a@news.shop.example", b"a@example.com")
    twice = b"\r\nX-Postline-Deliver-After: 1\r\nX-Postline-Deliver-After: 1\r\n\r\n"
    late = own_from.replace(b"\r\n\r\n", twice, 1)
    assert reply(late, roomy)[0] == "sender_header"
    assert reply(late.replace(b"Sender: z@bank.test\r\n", b""), roomy)[0] == "deliver_after"

"""The policy checks as pure functions: order, first decision wins, the check's name."""

from __future__ import annotations

import time

from services.ingest import replies
from services.ingest.auth import User
from services.ingest.config import IngestConfig, LimitsConfig, ListenerConfig, RateConfig
from services.ingest.headers import parse
from services.ingest.policy import connect, mail_from, message, rcpt_to
from services.ingest.policy.base import PolicyState, SessionInfo, Transaction
from shared.suppressions import SuppressionTable
from shared.wire.records import Suppression, SuppressionReason
from shared.wire.topics import SUPPRESSIONS, suppression_key

RELAY = ListenerConfig(name="relay", mode="relay")
ALICE = User("alice", frozenset({"example.com"}))


def state(**kw: object) -> PolicyState:
    config = IngestConfig(listeners=[RELAY], **kw)  # type: ignore[arg-type]
    table = SuppressionTable()
    return PolicyState.create(config, table)


def session(user: User | None = None, ip: str = "192.0.2.9") -> SessionInfo:
    return SessionInfo(ip=ip, port=1234, listener=RELAY, user=user)


def suppress(st: PolicyState, address: str, scope: str = "") -> None:
    record = Suppression(
        address=address, reason=SuppressionReason.MANUAL, at=time.time(), scope=scope
    )
    st.suppressions.apply(suppression_key(address, scope).encode(), SUPPRESSIONS.encode(record))


def test_connect_order() -> None:
    st = state(limits=LimitsConfig(max_sessions_per_ip=1, auth_failures=1))
    s = session()
    st.sessions_per_ip[s.ip] = 2
    assert connect.run(st, s).check == "sessions_per_ip"  # type: ignore[union-attr]
    st.auth.failed(s.ip, "alice", trusted=False)
    assert connect.run(st, s).check == "auth_throttle"  # type: ignore[union-attr]
    st.stopping = True
    assert connect.run(st, s).reply == replies.SHUTTING_DOWN  # type: ignore[union-attr]


def test_mail_from_spoofing_before_rates() -> None:
    st = state(rate=RateConfig(per_user=0.001, per_user_burst=1))
    txn = Transaction(id="1", mail_from="x@bank.test")
    decision = mail_from.run(st, session(ALICE), txn)
    assert decision is not None and decision.check == "sender_domain"
    assert "bank.test" in decision.reply.text
    ok = Transaction(id="2", mail_from="a@Example.COM")
    assert mail_from.run(st, session(ALICE), ok) is None
    assert mail_from.run(st, session(ALICE), ok).check == "user_rate"  # type: ignore[union-attr]
    # No AUTH (trusted relay): no domain check.
    assert mail_from.run(st, session(), txn) is None


def test_rcpt_relay_limit_suppression() -> None:
    st = state(trusted_networks=["10.0.0.0/8"], limits=LimitsConfig(max_recipients=1))
    txn = Transaction(id="1", mail_from="a@example.com")
    assert rcpt_to.run(st, session(), txn, "b@d.test").check == "relay"  # type: ignore[union-attr]
    assert rcpt_to.run(st, session(ip="10.1.2.3"), txn, "b@d.test") is None
    suppress(st, "gone@d.test")
    decision = rcpt_to.run(st, session(ALICE), txn, "Gone@D.test")
    assert decision is not None and decision.reply == replies.SUPPRESSED and not decision.drop
    txn.rcpt_to.append("b@d.test")
    decision = rcpt_to.run(st, session(ALICE), txn, "gone@d.test")
    assert decision is not None and decision.check == "recipient_limit"


def test_scoped_suppression_is_left_to_the_signer_and_drop_mode() -> None:
    st = state(suppression="drop")
    suppress(st, "u@d.test", scope="example.com")
    mine = Transaction(id="1", mail_from="a@example.com")
    # A scoped unsubscribe holds for bulk mail only, which ingest cannot tell yet at RCPT:
    # the signer decides once it has the headers (a password reset still gets through).
    assert rcpt_to.run(st, session(ALICE), mine, "u@d.test") is None
    suppress(st, "g@d.test")
    decision = rcpt_to.run(st, session(ALICE), mine, "g@d.test")
    assert decision is not None and decision.drop and decision.reply == replies.RCPT_OK
    st.suppressions.apply(suppression_key("g@d.test").encode(), None)
    assert rcpt_to.run(st, session(ALICE), mine, "g@d.test") is None


def test_tenant_suppression_holds_for_its_tenant_only() -> None:
    """A complaint against tenant t1 refuses t1's mail at RCPT, not t2's; an entry of the
    default tenant holds for a transaction with no tenant set (mail from before tenants)."""
    st = state()
    for address, tenant in (("c@d.test", "t1"), ("d@d.test", "default")):
        record = Suppression(
            address=address, reason=SuppressionReason.COMPLAINT, at=1.0, tenant=tenant
        )
        st.suppressions.apply(SUPPRESSIONS.key(record), SUPPRESSIONS.encode(record))
    t1 = Transaction(id="1", mail_from="a@example.com", tenant="t1")
    t2 = Transaction(id="2", mail_from="a@example.com", tenant="t2")
    decision = rcpt_to.run(st, session(ALICE), t1, "c@d.test")
    assert decision is not None and decision.check == "suppression"
    assert rcpt_to.run(st, session(ALICE), t2, "c@d.test") is None
    plain = Transaction(id="3", mail_from="a@example.com")
    assert rcpt_to.run(st, session(ALICE), plain, "d@d.test") is not None
    assert rcpt_to.run(st, session(ALICE), t1, "d@d.test") is None


def test_message_checks_order() -> None:
    st = state()
    txn = Transaction(id="1", mail_from="a@example.com")
    bad = b"From: x@bank.test\n\nhi\r\n"
    assert message.run(st, session(ALICE), txn, bad, parse(bad)).check == "smuggling"  # type: ignore[union-attr]
    nofrom = b"Subject: x\r\n\r\nhi\r\n"
    assert message.run(st, session(ALICE), txn, nofrom, parse(nofrom)).check == "from_header"  # type: ignore[union-attr]
    forged = b"From: x@bank.test\r\n\r\nhi\r\n"
    assert message.run(st, session(ALICE), txn, forged, parse(forged)).check == "from_domain"  # type: ignore[union-attr]
    assert message.run(st, session(), txn, forged, parse(forged)) is None
    normalise = state(smuggling="normalise")
    assert message.run(normalise, session(), txn, bad, parse(bad)) is None

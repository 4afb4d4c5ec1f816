"""The connect checks as pure functions: who is turned away before the greeting, with which
reply (RFC 5321 3.1: 421 or 554 instead of the 220)."""

from __future__ import annotations

from services.ingest.config import IngestConfig, LimitsConfig, ListenerConfig
from services.ingest.policy import connect
from services.ingest.policy.base import PolicyState, SessionInfo
from shared.suppressions import SuppressionTable

RELAY = ListenerConfig(name="relay", mode="relay")


def state(**limits: int) -> PolicyState:
    config = IngestConfig(
        listeners=[RELAY],
        trusted_networks=["10.0.0.0/8"],
        limits=LimitsConfig(**limits),  # type: ignore[arg-type]
    )
    return PolicyState.create(config, SuppressionTable())


def session(ip: str = "192.0.2.9") -> SessionInfo:
    return SessionInfo(ip=ip, port=1234, listener=RELAY)


def test_sessions_per_address_up_to_the_limit_pass() -> None:
    """The count includes the connecting session: the limit-th session is accepted, the one
    after it gets 421 4.7.0; another address's count is its own."""
    st = state(max_sessions_per_ip=3)
    s = session()
    st.sessions_per_ip[s.ip] = 3
    assert connect.run(st, s) is None
    st.sessions_per_ip[s.ip] = 4
    decision = connect.run(st, s)
    assert decision is not None and decision.check == "sessions_per_ip"
    assert str(decision.reply) == "421 4.7.0 Too many connections from your address"
    assert connect.run(st, session("192.0.2.10")) is None
    st.sessions_per_ip[s.ip] = 1
    assert connect.run(st, s) is None


def test_auth_failures_turn_an_address_away_but_never_a_trusted_network() -> None:
    st = state(auth_failures=2)
    outside, inside = session(), session("10.1.2.3")
    # Failures counted against both addresses (as before a reload made 10/8 trusted):
    # connect still asks whether the address is trusted now.
    for s in (outside, inside):
        for _ in range(3):
            st.auth.failed(s.ip, "alice", trusted=False)
    decision = connect.run(st, outside)
    assert decision is not None and decision.check == "auth_throttle"
    assert str(decision.reply) == "421 4.7.0 Too many authentication failures"
    assert connect.run(st, inside) is None
    assert connect.run(st, session("192.0.2.10")) is None


def test_a_connection_during_the_drain_is_told_to_come_back() -> None:
    st = state()
    assert connect.run(st, session()) is None
    st.stopping = True
    decision = connect.run(st, session("10.1.2.3"))
    assert decision is not None and decision.check == "shutdown"
    assert str(decision.reply) == "421 4.3.2 Service shutting down, try again later"

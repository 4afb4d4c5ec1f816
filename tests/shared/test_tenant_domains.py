"""Pure parts of sending domains: names, selectors from the injected clock, the records."""

from __future__ import annotations

import pytest

from shared.errors import TenantInvalid
from shared.tenant_domains import DomainPolicy, dns_records, domain_name, selectors
from shared.wire.records import DkimKeyRecord, SendingDomain

NOV_30_LATE = 1_796_083_199.0  # 2026-11-30T23:59:59Z


def test_domain_names_become_lower_case_a_labels() -> None:
    assert domain_name("Bücher.Example.") == "xn--bcher-kva.example"
    for bad in ("localhost", "a..b", "-a.example", "a_b.example", "x" * 64 + ".example"):
        with pytest.raises(TenantInvalid):
            domain_name(bad)


def test_selectors_follow_the_clock_not_the_calendar_of_the_machine() -> None:
    assert selectors(NOV_30_LATE) == {"rsa": "pl202611r", "ed25519": "pl202611e"}
    assert selectors(NOV_30_LATE + 1) == {"rsa": "pl202612r", "ed25519": "pl202612e"}
    assert selectors(0, "s1") == {"rsa": "s1r", "ed25519": "s1e"}


def test_records_skip_dmarc_when_present_and_cname_when_own_bounce_host() -> None:
    key = DkimKeyRecord(
        selector="s1e", algorithm="ed25519", public_key="AAAA", sealed_private_key=b"", created_at=0
    )
    domain = SendingDomain(name="shop.test", dkim=(key,))
    policy = DomainPolicy("bounces.relay.test", "_spf.relay.test")
    lines = [r.zone_line() for r in dns_records(domain, policy, has_dmarc=True)]
    assert lines == [
        's1e._domainkey.shop.test. IN TXT "v=DKIM1; k=ed25519; p=AAAA"',
        "bounces.shop.test. IN CNAME bounces.relay.test.",
        'shop.test. IN TXT "v=spf1 include:_spf.relay.test ~all"',
    ]

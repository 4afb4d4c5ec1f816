"""Queue targets: parsing (every malformed one refused with the reason) and matching."""

from __future__ import annotations

import pytest

from shared.errors import QueueInvalid
from shared.queue.targets import ALL, DOMAIN, MESSAGE, SOURCE, TENANT, Target, parse_target


@pytest.mark.parametrize(
    ("text", "kind", "name"),
    [
        ("domain:Example.COM.", DOMAIN, "example.com"),
        ("tenant:acme", TENANT, "acme"),
        ("provider:google", "provider", "google"),
        ("source:2001:db8::0:1", SOURCE, "2001:db8::1"),
        ("message:4f3c2a", MESSAGE, "4f3c2a"),
        ("all", ALL, ""),
        ("  domain:bücher.example ", DOMAIN, "bücher.example"),
    ],
)
def test_parse(text: str, kind: str, name: str) -> None:
    target = parse_target(text)
    assert (target.kind, target.name) == (kind, name)
    assert str(target) == (ALL if kind == ALL else f"{kind}:{name}")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("example.com", "expected KIND:NAME"),
        ("host:example.com", "expected KIND:NAME"),
        ("domain:", "the name is missing"),
        ("domain:exa mple.com", "not a host name label"),
        ("domain:-bad.example", "not a host name label"),
        ("domain:" + "a" * 64 + ".example", "not a host name label"),
        ("provider:gmail", "unknown; one of"),
        ("tenant:Acme", "expected 1-63 characters"),
        ("source:300.1.1.1", "not an IP address"),
        ("message:bad id", "expected letters, digits"),
    ],
)
def test_malformed_targets_are_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(QueueInvalid, match=why):
        parse_target(text)


def test_a_verb_takes_only_its_kinds() -> None:
    with pytest.raises(QueueInvalid, match="this action takes domain:, provider:"):
        parse_target("message:abc", ("domain", "provider"))


def test_matching() -> None:
    mail = {"message_id": "m1", "domain": "Example.com", "tenant": ""}
    assert Target(DOMAIN, "example.com").matches(**mail)
    assert Target(TENANT, "default").matches(**mail)  # no tenant: the default tenant's mail
    assert Target(MESSAGE, "m1").matches(**mail)
    assert Target(ALL).matches(**mail)
    assert not Target(DOMAIN, "example.org").matches(**mail)
    assert not Target(TENANT, "acme").matches(**mail)
    assert not Target("provider", "google").matches(**mail)  # provider unknown: no match
    assert Target("provider", "google").matches(**mail, provider="google")
    assert Target(SOURCE, "192.0.2.1").matches(**mail, source="192.0.2.1")

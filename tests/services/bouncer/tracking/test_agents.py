"""The user agent classes, as a table of real requests (the specification of agents.py)."""

from __future__ import annotations

import ipaddress
from typing import Literal

import pytest

from services.bouncer.tracking.agents import MACHINE_AGENTS, Agent, classify_agent
from services.bouncer.tracking.config import APPLE_NETWORKS

APPLE = [ipaddress.ip_network(n) for n in APPLE_NETWORKS]
HOME = "203.0.113.7"  # a residential address (TEST-NET-3)
APPLE_PROXY = "17.58.63.21"

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
APPLE_MAIL_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)
IOS_MAIL = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)

#: (kind, method, user agent, client address, expected class)
CASES = [
    # Apple Mail Privacy Protection: bare "Mozilla/5.0", from Apple's network or not.
    ("open", "GET", "Mozilla/5.0", APPLE_PROXY, Agent.APPLE_MPP),
    ("open", "GET", "Mozilla/5.0", HOME, Agent.APPLE_MPP),
    ("open", "GET", " Mozilla/5.0 ", None, Agent.APPLE_MPP),
    ("open", "GET", APPLE_MAIL_MAC, APPLE_PROXY, Agent.APPLE_MPP),  # Apple's network decides
    # Image proxies that fetch when the recipient opens.
    (
        "open",
        "GET",
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        "66.249.84.10",
        Agent.GMAIL_PROXY,
    ),
    (
        "open",
        "GET",
        "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
        "98.137.11.1",
        Agent.YAHOO_PROXY,
    ),
    # Security gateways, link checkers, HTTP libraries and HEAD.
    ("click", "GET", "Mozilla/5.0 (compatible; Barracuda Sentinel)", HOME, Agent.SCANNER),
    ("click", "GET", "Mimecast-URL-Protect/1.0", HOME, Agent.SCANNER),
    ("click", "GET", "Mozilla/5.0 Proofpoint URL Defense", HOME, Agent.SCANNER),
    (
        "click",
        "GET",
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)",
        HOME,
        Agent.SCANNER,
    ),
    ("click", "GET", "Microsoft Office Existence Discovery", HOME, Agent.SCANNER),
    (
        "click",
        "GET",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "BingPreview/1.0b",
        HOME,
        Agent.SCANNER,
    ),
    ("click", "GET", "curl/8.5.0", HOME, Agent.SCANNER),
    ("click", "GET", "python-requests/2.32.3", HOME, Agent.SCANNER),
    ("click", "GET", "Go-http-client/1.1", HOME, Agent.SCANNER),
    ("open", "GET", "Java/17.0.2", HOME, Agent.SCANNER),
    ("click", "HEAD", CHROME, HOME, Agent.SCANNER),  # a person's click is a GET
    ("open", "head", "Mozilla/5.0", APPLE_PROXY, Agent.SCANNER),
    # Crawlers, previews, headless browsers, nothing at all.
    ("click", "GET", "Mozilla/5.0 (compatible; Googlebot/2.1)", HOME, Agent.BOT),
    ("click", "GET", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", HOME, Agent.BOT),
    ("click", "GET", "facebookexternalhit/1.1", HOME, Agent.BOT),
    (
        "click",
        "GET",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/120.0.0.0 Safari/537.36",
        HOME,
        Agent.BOT,
    ),
    ("click", "GET", "", HOME, Agent.BOT),
    ("open", "GET", "", HOME, Agent.BOT),
    ("click", "GET", "Mozilla/5.0", APPLE_PROXY, Agent.BOT),  # MPP fetches images, not links
    # Mail programs.
    ("open", "GET", "Mozilla/4.0 (compatible; ms-office; MSOffice 16)", HOME, Agent.MAIL_CLIENT),
    (
        "open",
        "GET",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Thunderbird/128.5.0",
        HOME,
        Agent.MAIL_CLIENT,
    ),
    ("open", "GET", APPLE_MAIL_MAC, HOME, Agent.MAIL_CLIENT),
    ("open", "GET", IOS_MAIL, HOME, Agent.MAIL_CLIENT),
    ("click", "GET", APPLE_MAIL_MAC, APPLE_PROXY, Agent.MAIL_CLIENT),  # network: opens only
    # Browsers.
    ("click", "GET", CHROME, HOME, Agent.BROWSER),
    ("click", "GET", SAFARI_IPHONE, HOME, Agent.BROWSER),
    ("click", "GET", FIREFOX, None, Agent.BROWSER),
    (
        "click",
        "GET",
        "Opera/9.80 (Windows NT 6.1; U; en) Presto/2.10.289 Version/12.00",
        HOME,
        Agent.BROWSER,
    ),
    # Anything else.
    ("click", "GET", "SomethingNew/1.0", HOME, Agent.UNKNOWN),
    ("open", "GET", "Mozilla/6.0", HOME, Agent.UNKNOWN),
]


@pytest.mark.parametrize(("kind", "method", "user_agent", "client", "expected"), CASES)
def test_classify(
    kind: Literal["open", "click"],
    method: str,
    user_agent: str,
    client: str | None,
    expected: Agent,
) -> None:
    address = ipaddress.ip_address(client) if client is not None else None
    assert classify_agent(kind, method, user_agent, address, APPLE) is expected


def test_every_class_has_cases() -> None:
    assert {case[-1] for case in CASES} == set(Agent)


def test_machine_classes() -> None:
    assert {Agent.APPLE_MPP, Agent.SCANNER, Agent.BOT} == MACHINE_AGENTS
    # The providers' proxies fetch when the person opens the message: they count as people.
    assert Agent.GMAIL_PROXY not in MACHINE_AGENTS and Agent.YAHOO_PROXY not in MACHINE_AGENTS


def test_apple_networks_are_configuration() -> None:
    proxy = ipaddress.ip_address(APPLE_PROXY)
    assert classify_agent("open", "GET", APPLE_MAIL_MAC, proxy, []) is Agent.MAIL_CLIENT
    other = [ipaddress.ip_network("198.51.100.0/24")]
    inside = ipaddress.ip_address("198.51.100.9")
    assert classify_agent("open", "GET", APPLE_MAIL_MAC, inside, other) is Agent.APPLE_MPP

"""Who fetched a pixel or followed a link: the user agent's class, from the request alone.

One pure function, :func:`classify_agent`, over the method, the ``User-Agent`` header and the
client address; the table of real user agents in its test is the specification. The first
rule that matches decides (most specific first). It does not judge timing: clicks too soon
after sending or in bursts are ``machine.py``'s.

What a class means for reports (:data:`MACHINE_AGENTS`):

- ``apple_mpp``: Apple Mail Privacy Protection's proxy, which fetches every image of every
  message when it arrives, read or not, with the bare ``Mozilla/5.0`` user agent, from
  Apple's network. Machine.
- ``gmail_proxy``, ``yahoo_proxy``: the providers' image proxies; they fetch when the
  recipient opens the message (and may cache), so they count as the recipient. Not machine.
- ``scanner``: security gateways and link checkers (Barracuda, Mimecast, Proofpoint,
  Microsoft Safe Links, ...), HTTP libraries and every ``HEAD`` request. Machine.
- ``bot``: crawlers, link previews, headless browsers, no user agent. Machine.
- ``mail_client``, ``browser``: a person's software. ``unknown``: none of these; counted as
  a person (a rare client is likelier than a scanner with a user agent we never saw).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Sequence
from typing import Literal

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Agent(enum.StrEnum):
    """The class of what made a tracking request (``Event.agent``)."""

    APPLE_MPP = "apple_mpp"
    GMAIL_PROXY = "gmail_proxy"
    YAHOO_PROXY = "yahoo_proxy"
    SCANNER = "scanner"
    BOT = "bot"
    MAIL_CLIENT = "mail_client"
    BROWSER = "browser"
    UNKNOWN = "unknown"


#: The classes whose requests are never the recipient's own (``Event.machine``).
MACHINE_AGENTS = frozenset({Agent.APPLE_MPP, Agent.SCANNER, Agent.BOT})

#: Apple MPP's user agent: "Mozilla/5.0" and nothing else (no platform, no engine).
_BARE_MOZILLA = "mozilla/5.0"

#: Lower-case substrings of security gateways, link checkers and HTTP libraries.
_SCANNERS = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "safelinks",
    "microsoft office",  # Office's link checks ("Microsoft Office/16.0", "... Existence ...")
    "bingpreview",  # Outlook.com's and Safe Links' page fetcher
    "symantec",
    "messagelabs",
    "forcepoint",
    "trendmicro",
    "sophos",
    "fortiguard",
    "ironport",
    "zscaler",
    "spamtitan",
    "hornetsecurity",
    "libraesva",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp/",
    "go-http-client",
    "java/",
    "okhttp",
    "apache-httpclient",
    "libwww-perl",
    "node-fetch",
    "axios/",
)

#: Lower-case substrings of crawlers, link previews and headless browsers.
_BOTS = (
    "bot",  # Googlebot, bingbot, Slackbot, Twitterbot, Discordbot, AhrefsBot, ...
    "crawler",
    "spider",
    "slurp",
    "headless",
    "phantomjs",
    "facebookexternalhit",
    "whatsapp",
    "preview",  # SkypeUriPreview and other link expanders
    "embedly",
)

#: Lower-case substrings of mail programs (their built-in fetches and web views).
_MAIL_CLIENTS = (
    "ms-office",  # Outlook for Windows: "Mozilla/4.0 (compatible; ms-office; MSOffice 16)"
    "msoffice",
    "outlook",
    "thunderbird",
    "airmail",
    "postbox",
    "em client",
    "mailbird",
    "evolution/",
    "kmail",
    "samsungemail",
)


def classify_agent(
    kind: Literal["open", "click"],
    method: str,
    user_agent: str,
    client: Address | None,
    apple_networks: Sequence[Network],
) -> Agent:
    """The class of one request to the pixel (``open``) or a tracked link (``click``)."""
    ua = " ".join(user_agent.split()).lower()
    if method.upper() == "HEAD":
        return Agent.SCANNER  # link checkers look without fetching; a person's click GETs
    if "googleimageproxy" in ua:
        return Agent.GMAIL_PROXY
    if "yahoomailproxy" in ua:
        return Agent.YAHOO_PROXY
    if any(part in ua for part in _SCANNERS):
        return Agent.SCANNER
    if any(part in ua for part in _BOTS):
        return Agent.BOT
    if kind == "open" and (ua == _BARE_MOZILLA or _within(client, apple_networks)):
        return Agent.APPLE_MPP
    if not ua or ua == _BARE_MOZILLA:
        return Agent.BOT  # no browser sends nothing, or "Mozilla/5.0" alone, on a click
    if any(part in ua for part in _MAIL_CLIENTS) or _is_webkit_mail(ua):
        return Agent.MAIL_CLIENT
    if ua.startswith(("mozilla/", "opera/")) and "(" in ua:
        return Agent.BROWSER
    return Agent.UNKNOWN


def _is_webkit_mail(ua: str) -> bool:
    # Apple Mail (macOS) and iOS Mail render with WebKit and say so, but without the
    # "Safari" (or Chrome) product token every WebKit browser adds:
    # "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    return "applewebkit" in ua and "safari" not in ua and "chrome" not in ua


def _within(client: Address | None, networks: Sequence[Network]) -> bool:
    return client is not None and any(client in network for network in networks)

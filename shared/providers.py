"""The bounded map from MX host names to mailbox provider names.

Owns: :data:`PROVIDERS` (MX host suffix -> provider) and :func:`provider_for_host`. The
provider name is used for delivery policy (limits, TLS) and as the ``provider`` metric label,
so the set of names is closed and small (recipient domains are never a label: one series
per domain would be unbounded).
Does not resolve DNS: callers pass the MX host they found.
"""

from __future__ import annotations

#: Provider of every MX host ending in one of these suffixes (matched on label boundaries).
PROVIDERS: dict[str, str] = {
    "google.com": "google",
    "googlemail.com": "google",
    "aspmx.l.google.com": "google",
    "outlook.com": "microsoft",
    "protection.outlook.com": "microsoft",
    "hotmail.com": "microsoft",
    "yahoodns.net": "yahoo",
    "yahoo.com": "yahoo",
    "aol.com": "yahoo",
    "icloud.com": "apple",
    "me.com": "apple",
    "mail.icloud.com": "apple",
    "zoho.com": "zoho",
    "zoho.eu": "zoho",
    "protonmail.ch": "proton",
    "proton.me": "proton",
    "yandex.net": "yandex",
    "yandex.ru": "yandex",
    "mail.ru": "mailru",
    "gmx.net": "gmx",
    "web.de": "gmx",
    "1and1.com": "ionos",
    "ionos.com": "ionos",
    "fastmail.com": "fastmail",
    "messagingengine.com": "fastmail",
    "pphosted.com": "proofpoint",
    "mimecast.com": "mimecast",
    "barracudanetworks.com": "barracuda",
    "qq.com": "tencent",
}

#: The label for every MX host not in :data:`PROVIDERS`.
OTHER = "other"

#: Every name :func:`provider_for_host` can return.
PROVIDER_NAMES: frozenset[str] = frozenset(PROVIDERS.values()) | {OTHER}


def provider_for_host(mx_host: str) -> str:
    """The provider of ``mx_host`` (``"alt1.aspmx.l.google.com."`` -> ``"google"``).

    Matches the longest suffix on a label boundary, case-insensitively; ``"other"`` when
    no suffix matches.
    """
    host = mx_host.strip().rstrip(".").lower()
    labels = host.split(".")
    for start in range(len(labels)):
        provider = PROVIDERS.get(".".join(labels[start:]))
        if provider is not None:
            return provider
    return OTHER

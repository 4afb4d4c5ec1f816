"""The DNS checks of the signer's key directory: ``postline dkim check`` and ``domain check``.

Each local selector's TXT record, then the shared SPF, DMARC and bounce-MX checks
(``shared.dnscheck``). It does not print (``commands.py``).
"""

from __future__ import annotations

from services.signer.keys import KeyStore
from shared.dnscheck import (
    FAIL,
    OK,
    Lookup,
    LookupFailed,
    Row,
    SendingPolicy,
    check_bounce_mx,
    check_dmarc,
    check_spf,
    tags,
)


async def check_dkim(lookup: Lookup, store: KeyStore, domain: str) -> list[Row]:
    """Each local selector of ``domain``: is its TXT record published and the same key?"""
    keys = store.keys_of(domain)
    if not keys:
        return [Row(f"dkim {domain}", FAIL, f"no key for {domain} in {store.directory}")]
    rows = []
    for key in sorted(keys, key=lambda k: k.selector):
        check = f"dkim {key.selector}"
        try:
            records = [r for r in await lookup.txt(key.name) if "p=" in r]
        except LookupFailed as exc:
            rows.append(Row(check, FAIL, f"lookup failed: {exc}"))
            continue
        if not records:
            rows.append(
                Row(check, FAIL, f"no TXT record at {key.name}; publish: {key.txt_record()}")
            )
            continue
        published = tags(records[0])
        if published.get("p") != key.public_p():
            rows.append(Row(check, FAIL, f"{key.name} publishes a different key"))
        elif published.get("k", "rsa") != key.algorithm:
            rows.append(
                Row(
                    check,
                    FAIL,
                    f"{key.name} has k={published.get('k')}, local key is {key.algorithm}",
                )
            )
        else:
            rows.append(Row(check, OK, f"{key.algorithm} key at {key.name} matches"))
    return rows


async def check_domain(
    lookup: Lookup, store: KeyStore, domain: str, bounce_domain: str, policy: SendingPolicy
) -> list[Row]:
    """Every check of ``postline domain check``, in report order."""
    rows = [await check_spf(lookup, domain, policy, "spf")]
    if bounce_domain != domain:
        rows.append(await check_spf(lookup, bounce_domain, policy, "spf bounce domain"))
    rows += await check_dkim(lookup, store, domain)
    rows += await check_dmarc(lookup, domain, bounce_domain)
    rows.append(await check_bounce_mx(lookup, bounce_domain))
    return rows

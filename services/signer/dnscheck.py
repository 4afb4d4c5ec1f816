"""What DNS says about a sending domain: SPF, DKIM selectors, DMARC and the bounce MX.

Owns the checks behind ``postline dkim check`` and ``postline domain check``; each returns
rows (check, status, detail) and never raises for a DNS answer it does not like: a missing
or wrong record is a ``FAIL`` row, a risky one a ``WARN`` row. DNS failures (timeouts,
SERVFAIL) are ``FAIL`` rows too, naming the error. It does not print (``commands.py``).

Alignment (RFC 7489 3.1) is judged without the Public Suffix List: two domains are taken as
relaxed-aligned when one is the other or a subdomain of it, which is how a sending domain
and its bounce subdomain (``bounces.example.com``) are set up in practice.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.resolver
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.ANY.TXT import TXT

from services.signer.keys import KeyStore

OK = "ok"
WARN = "warn"
FAIL = "FAIL"


@dataclass(frozen=True)
class Row:
    """One line of a report."""

    check: str
    status: str
    detail: str


@dataclass(frozen=True)
class SendingPolicy:
    """What our SPF authorisation looks like: an include domain and/or addresses."""

    spf_include: str = ""
    sending_ips: tuple[str, ...] = ()


def make_resolver(nameserver: str = "", timeout: float = 5.0) -> dns.asyncresolver.Resolver:
    """A resolver: the system's, or ``HOST:PORT`` / ``HOST`` only (tests, split horizons)."""
    if not nameserver:
        resolver = dns.asyncresolver.Resolver()
    else:
        host, _, port = nameserver.rpartition(":") if ":" in nameserver else (nameserver, "", "")
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [host or nameserver]
        resolver.port = int(port) if port else 53
    resolver.lifetime = timeout
    return resolver


class Lookup:
    """TXT and MX lookups that report "absent" and "failed" separately."""

    def __init__(self, resolver: dns.asyncresolver.Resolver) -> None:
        self.resolver = resolver

    async def txt(self, name: str) -> list[str]:
        """Every TXT record at ``name`` (strings joined); [] when there is none."""
        answer = await self._resolve(name, "TXT")
        return [
            b"".join(rr.strings).decode("utf-8", "replace") for rr in answer if isinstance(rr, TXT)
        ]

    async def mx(self, name: str) -> list[tuple[int, str]]:
        """(preference, host) of every MX at ``name``; [] when there is none."""
        answer = await self._resolve(name, "MX")
        return sorted((rr.preference, rr.exchange.to_text()) for rr in answer if isinstance(rr, MX))

    async def _resolve(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        try:
            return list(await self.resolver.resolve(name, rdtype))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            raise LookupFailed(f"{rdtype} {name}: {type(exc).__name__}") from exc


class LookupFailed(Exception):
    """A DNS query failed (timeout, SERVFAIL): the record's state is unknown."""


def _tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        name, eq, value = part.strip().partition("=")
        if eq:
            tags[name.strip().lower()] = "".join(value.split())
    return tags


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
        published = _tags(records[0])
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


def _spf_authorises(record: str, policy: SendingPolicy) -> tuple[str, str]:
    terms = record.split()[1:]
    if policy.spf_include and f"include:{policy.spf_include}".lower() in (
        t.lower().lstrip("+") for t in terms
    ):
        return OK, f"includes {policy.spf_include}"
    networks = [
        ipaddress.ip_network(t.split(":", 1)[1], strict=False)
        for t in terms
        if t.lower().lstrip("+").startswith(("ip4:", "ip6:"))
    ]
    missing = [
        ip
        for ip in policy.sending_ips
        if not any(ipaddress.ip_address(ip) in net for net in networks)
    ]
    if policy.sending_ips and not missing:
        return OK, "authorises every sending address"
    if any(t.lower() in ("+all", "all") for t in terms):
        return WARN, "ends in +all: anyone may send as this domain"
    if not policy.spf_include and not policy.sending_ips:
        return OK, "present (no sending addresses configured to compare)"
    wanted = (
        f"include:{policy.spf_include}"
        if policy.spf_include
        else " ".join(f"ip4:{ip}" if ":" not in ip else f"ip6:{ip}" for ip in missing)
    )
    return FAIL, f"does not authorise us; add {wanted}"


async def check_spf(lookup: Lookup, domain: str, policy: SendingPolicy, label: str) -> Row:
    """SPF of ``domain`` (RFC 7208): exactly one record, authorising our senders."""
    try:
        records = [r for r in await lookup.txt(domain) if r.lower().startswith("v=spf1")]
    except LookupFailed as exc:
        return Row(label, FAIL, f"lookup failed: {exc}")
    if not records:
        return Row(label, FAIL, f"no SPF record at {domain}")
    if len(records) > 1:
        # RFC 7208 4.5: more than one v=spf1 record is a permerror.
        return Row(label, FAIL, f"{len(records)} SPF records at {domain} (permerror)")
    status, detail = _spf_authorises(records[0], policy)
    return Row(label, status, detail)


def aligned(a: str, b: str) -> bool:
    """Relaxed alignment, approximated (see the module docstring)."""
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    return a == b or a.endswith("." + b) or b.endswith("." + a)


async def check_dmarc(lookup: Lookup, domain: str, bounce_domain: str) -> list[Row]:
    """DMARC at ``_dmarc.<domain>``: present, its policy, and SPF alignment of our bounces."""
    try:
        records = [
            r for r in await lookup.txt(f"_dmarc.{domain}") if r.lower().startswith("v=dmarc1")
        ]
    except LookupFailed as exc:
        return [Row("dmarc", FAIL, f"lookup failed: {exc}")]
    if len(records) != 1:
        problem = "no DMARC record" if not records else "more than one DMARC record"
        return [Row("dmarc", FAIL, f"{problem} at _dmarc.{domain}")]
    tags = _tags(records[0])
    policy = tags.get("p", "")
    rows = [
        Row(
            "dmarc",
            OK if policy in ("quarantine", "reject") else WARN,
            f"p={policy or '(missing)'}"
            + ("" if policy in ("quarantine", "reject") else ": monitoring only"),
        )
    ]
    # DKIM: we sign with d=<From domain>, aligned in both modes (RFC 7489 3.1.1).
    rows.append(Row("dmarc dkim alignment", OK, f"d={domain} (adkim={tags.get('adkim', 'r')})"))
    strict = tags.get("aspf", "r") == "s"
    spf_ok = bounce_domain == domain if strict else aligned(bounce_domain, domain)
    rows.append(
        Row(
            "dmarc spf alignment",
            OK if spf_ok else WARN,
            f"bounce domain {bounce_domain} "
            + ("aligned" if spf_ok else "not aligned: DMARC relies on DKIM alone")
            + f" (aspf={'s' if strict else 'r'})",
        )
    )
    return rows


async def check_bounce_mx(lookup: Lookup, bounce_domain: str) -> Row:
    """The bounce domain must receive mail: an MX that is not a null MX (RFC 7505)."""
    try:
        records = await lookup.mx(bounce_domain)
    except LookupFailed as exc:
        return Row("bounce mx", FAIL, f"lookup failed: {exc}")
    if not records:
        return Row("bounce mx", FAIL, f"no MX at {bounce_domain}: bounces cannot come back")
    if records == [(0, ".")]:
        return Row("bounce mx", FAIL, f"{bounce_domain} has a null MX (RFC 7505)")
    return Row("bounce mx", OK, ", ".join(f"{pref} {host}" for pref, host in records))


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


def has_problems(rows: Sequence[Row]) -> bool:
    """Whether any row failed."""
    return any(row.status == FAIL for row in rows)


def format_table(rows: Sequence[Row]) -> str:
    """The rows as an aligned text table."""
    width = max([len("CHECK"), *(len(r.check) for r in rows)])
    lines = [f"{'CHECK':<{width}}  STATUS  DETAIL"]
    lines += [f"{r.check:<{width}}  {r.status:<6}  {r.detail}" for r in rows]
    return "\n".join(lines)

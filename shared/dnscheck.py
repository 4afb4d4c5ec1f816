"""What DNS says about a sending domain: SPF (includes walked), DMARC and the bounce MX.

Owns the DNS checks that ``postline domain check`` (the signer's key directory) and
``postline tenant domain verify`` (tenants' run-time keys) share; each returns rows (check,
status, detail) and never raises for a DNS answer it does not like: a missing or wrong record
is a ``FAIL`` row, a risky one a ``WARN`` row. DNS failures (timeouts, SERVFAIL) are ``FAIL``
rows too, naming the error. It does not print and knows no key store.

Why not ``checkdmarc`` (which the tenants issue suggested): it is synchronous (every lookup
would block the event loop or need a thread), keeps a module-global DNS cache (a ``verify``
run right after publishing a record could be answered from it, and tests would leak answers
into each other), and pulls nine runtime dependencies, two HTTP stacks among them, for
BIMI/MTA-STS/DNSSEC checks we do not run. Walking SPF includes with the RFC 7208 limits is
the one thing we needed from it: :func:`walk_spf`, about 60 lines on our own resolver.

Alignment (RFC 7489 3.1) is judged without the Public Suffix List: two domains are taken as
relaxed-aligned when one is the other or a subdomain of it, which is how a sending domain
and its bounce subdomain (``bounces.example.com``) are set up in practice.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.asyncresolver
import dns.exception
import dns.resolver
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.ANY.TXT import TXT

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


def tags(record: str) -> dict[str, str]:
    """The tag=value pairs of a DKIM or DMARC record (RFC 6376 3.2), names lower-cased."""
    tags = {}
    for part in record.split(";"):
        name, eq, value = part.strip().partition("=")
        if eq:
            tags[name.strip().lower()] = "".join(value.split())
    return tags


#: RFC 7208 4.6.4: at most 10 mechanisms and modifiers that cause DNS lookups (include, a,
#: mx, ptr, exists, redirect) per evaluation, counted across nested includes; more is a
#: permerror, and receivers then treat the domain as having no usable SPF.
SPF_LOOKUP_LIMIT = 10
#: RFC 7208 4.6.4: at most 2 lookups that return no records ("void lookups").
SPF_VOID_LIMIT = 2
_SPF_LOOKUP_TERMS = ("include:", "a", "mx", "ptr", "exists:", "redirect=")


@dataclass
class SpfWalk:
    """What walking a domain's SPF record and its includes found."""

    lookups: int = 0
    voids: int = 0
    includes: set[str] = field(default_factory=set)  # every domain reached by include/redirect
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    plus_all: bool = False  # the top-level record ends in +all
    error: str = ""  # a permerror (lookup limit, several records, a loop) or a failed lookup


async def walk_spf(lookup: Lookup, domain: str) -> SpfWalk:
    """Follow ``domain``'s SPF record through include: and redirect=, counting DNS-querying
    terms against the RFC 7208 limits; ip4:/ip6: networks and every reached domain collected."""
    walk = SpfWalk()
    await _walk(lookup, domain, walk, depth=0, seen=set())
    return walk


async def _walk(lookup: Lookup, domain: str, walk: SpfWalk, depth: int, seen: set[str]) -> None:
    if domain in seen:
        walk.error = walk.error or f"SPF include loop at {domain}"
        return
    seen.add(domain)
    records = [r for r in await lookup.txt(domain) if r.lower().split(" ", 1)[0] == "v=spf1"]
    if not records:
        walk.voids += depth > 0
        if walk.voids > SPF_VOID_LIMIT:
            walk.error = walk.error or f"more than {SPF_VOID_LIMIT} void lookups (RFC 7208 4.6.4)"
        return
    if len(records) > 1:
        # RFC 7208 4.5: more than one v=spf1 record is a permerror.
        walk.error = walk.error or f"{len(records)} SPF records at {domain} (permerror)"
        return
    for term in records[0].split()[1:]:
        name = term.lower().lstrip("+")
        if depth == 0 and name == "all" and not term.startswith(("-", "~", "?")):
            walk.plus_all = True
        if name.startswith(_SPF_LOOKUP_TERMS) and not term.startswith("-"):
            walk.lookups += 1
            if walk.lookups > SPF_LOOKUP_LIMIT:
                walk.error = walk.error or (
                    f"more than {SPF_LOOKUP_LIMIT} DNS lookups (RFC 7208 4.6.4: permerror)"
                )
                return
        if name.startswith(("include:", "redirect=")):
            target = name.split(":" if name.startswith("include:") else "=", 1)[1]
            walk.includes.add(target.rstrip("."))
            await _walk(lookup, target.rstrip("."), walk, depth + 1, seen)
        elif name.startswith(("ip4:", "ip6:")):
            try:
                walk.networks.append(ipaddress.ip_network(name.split(":", 1)[1], strict=False))
            except ValueError:
                walk.error = walk.error or f"malformed {term} at {domain}"


def _spf_verdict(walk: SpfWalk, policy: SendingPolicy) -> tuple[str, str]:
    if walk.error:
        return FAIL, walk.error
    if policy.spf_include and policy.spf_include.lower().rstrip(".") in walk.includes:
        return OK, f"includes {policy.spf_include} ({walk.lookups} of {SPF_LOOKUP_LIMIT} lookups)"
    missing = [
        ip
        for ip in policy.sending_ips
        if not any(ipaddress.ip_address(ip) in net for net in walk.networks)
    ]
    if policy.sending_ips and not missing:
        return OK, "authorises every sending address"
    if walk.plus_all:
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
    """SPF of ``domain`` (RFC 7208): one record, within the lookup limits, authorising our
    senders directly or through nested includes."""
    try:
        records = [r for r in await lookup.txt(domain) if r.lower().startswith("v=spf1")]
        if not records:
            return Row(label, FAIL, f"no SPF record at {domain}")
        walk = await walk_spf(lookup, domain)
    except LookupFailed as exc:
        return Row(label, FAIL, f"lookup failed: {exc}")
    status, detail = _spf_verdict(walk, policy)
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
    found = tags(records[0])
    policy = found.get("p", "")
    rows = [
        Row(
            "dmarc",
            OK if policy in ("quarantine", "reject") else WARN,
            f"p={policy or '(missing)'}"
            + ("" if policy in ("quarantine", "reject") else ": monitoring only"),
        )
    ]
    # DKIM: we sign with d=<From domain>, aligned in both modes (RFC 7489 3.1.1).
    rows.append(Row("dmarc dkim alignment", OK, f"d={domain} (adkim={found.get('adkim', 'r')})"))
    strict = found.get("aspf", "r") == "s"
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


def has_problems(rows: Sequence[Row]) -> bool:
    """Whether any row failed."""
    return any(row.status == FAIL for row in rows)


def format_table(rows: Sequence[Row]) -> str:
    """The rows as an aligned text table."""
    width = max([len("CHECK"), *(len(r.check) for r in rows)])
    lines = [f"{'CHECK':<{width}}  STATUS  DETAIL"]
    lines += [f"{r.check:<{width}}  {r.status:<6}  {r.detail}" for r in rows]
    return "\n".join(lines)

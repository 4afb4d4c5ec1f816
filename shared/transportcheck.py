"""What DNS (and the policy host) say about mail to a domain: MTA-STS, DANE and TLS-RPT.

Owns the transport-security rows of ``postline domain check`` (``shared.dnscheck``'s
:class:`Row`): the ``_mta-sts`` TXT record and the policy fetched from
``mta-sts.<domain>`` (or why it could not be), whether the domain's MX hosts match the
policy, the TLSA records of each MX host (``_25._tcp.<mx>``) with the AD bit the resolver
set, and the ``_smtp._tls`` TLS-RPT record. Like ``shared.dnscheck`` it never raises for an
answer it dislikes: a broken record is a ``FAIL`` row, a domain that publishes nothing an
``info`` row (not a problem: most domains publish none of these).

The AD bit is shown as the resolver answered it. It means "validated" only when the
resolver validates DNSSEC and the path to it is trusted (a local validating resolver);
any resolver can set it, so the rows say so instead of vouching for it.
"""

from __future__ import annotations

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.resolver
from dns.rdtypes.ANY.TLSA import TLSA

from shared.dnscheck import FAIL, OK, WARN, Lookup, LookupFailed, Row
from shared.mtasts import (
    MtaStsError,
    PolicyInvalid,
    StsPolicy,
    parse_txt,
    sts_records,
    txt_name,
)
from shared.mtasts_fetch import PolicyFetcher
from shared.tlsrpt_record import TlsRptInvalid, tlsrpt_name, tlsrpt_rua

#: A row that reports, without judging: nothing published.
INFO = "info"


async def check_transport(lookup: Lookup, domain: str, fetcher: PolicyFetcher) -> list[Row]:
    """Every transport-security row for ``domain``, in report order."""
    try:
        mx = [host for _, host in await lookup.mx(domain)]
    except LookupFailed:
        mx = []
    hosts = [host.rstrip(".") for host in mx if host not in ("", ".")] or ([] if mx else [domain])
    rows = await check_mta_sts(lookup, domain, fetcher, hosts)
    rows += await check_dane(lookup, hosts)
    rows.append(await check_tlsrpt(lookup, domain))
    return rows


async def check_mta_sts(
    lookup: Lookup, domain: str, fetcher: PolicyFetcher, mx_hosts: list[str]
) -> list[Row]:
    """The TXT record, the fetched policy, and the MX hosts against its patterns."""
    name = txt_name(domain)
    try:
        records = sts_records(await lookup.txt(name))
    except LookupFailed as exc:
        return [Row("mta-sts txt", FAIL, f"lookup failed: {exc}")]
    if not records:
        return [Row("mta-sts", INFO, f"no v=STSv1 TXT record at {name}: no MTA-STS")]
    rows: list[Row] = []
    if len(records) > 1:
        rows.append(
            Row("mta-sts txt", FAIL, f"{len(records)} records at {name}: RFC 8461 3.1 uses none")
        )
    else:
        try:
            rows.append(Row("mta-sts txt", OK, f"id={parse_txt(records[0])}"))
        except PolicyInvalid as exc:
            rows.append(Row("mta-sts txt", FAIL, str(exc)))
    try:
        policy = await fetcher.fetch(domain)
    except MtaStsError as exc:
        return [*rows, Row("mta-sts policy", FAIL, f"{exc.result_type}: {exc}")]
    rows.append(Row("mta-sts policy", OK, _describe(policy, fetcher.url(domain))))
    if policy.mode != "none":
        rows.append(_mx_row(policy, mx_hosts))
    return rows


def _describe(policy: StsPolicy, url: str) -> str:
    return f"{url}: mode {policy.mode}, max_age {policy.max_age}, mx {', '.join(policy.mx)}"


def _mx_row(policy: StsPolicy, mx_hosts: list[str]) -> Row:
    outside = [host for host in mx_hosts if not policy.matches(host)]
    if not outside:
        return Row("mta-sts mx", OK, f"every MX host matches: {', '.join(mx_hosts) or '-'}")
    words = f"MX hosts outside the policy's patterns: {', '.join(outside)}"
    if policy.mode == "enforce":
        return Row("mta-sts mx", FAIL, f"{words} (senders will not deliver to them)")
    return Row("mta-sts mx", WARN, f"{words} (mode testing: reported, not enforced)")


async def check_dane(lookup: Lookup, mx_hosts: list[str]) -> list[Row]:
    """The TLSA records of each MX host's port 25 (RFC 7672 2.2) and the AD bit."""
    resolver = _asking_for_ad(lookup.resolver)
    rows: list[Row] = []
    for host in mx_hosts:
        name = f"_25._tcp.{host}"
        try:
            answer = await resolver.resolve(name, "TLSA", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            rows.append(Row(f"dane {host}", INFO, f"no TLSA records at {name}"))
            continue
        except dns.exception.DNSException as exc:
            rows.append(Row(f"dane {host}", FAIL, f"TLSA {name}: {type(exc).__name__}"))
            continue
        tlsa = [rr for rr in answer if isinstance(rr, TLSA)]
        ad = bool(answer.response.flags & dns.flags.AD)
        shown = "; ".join(
            f"{rr.usage} {rr.selector} {rr.mtype} {rr.cert.hex()[:16]}..." for rr in tlsa
        )
        if ad:
            rows.append(Row(f"dane {host}", OK, f"{len(tlsa)} TLSA, AD=1: {shown}"))
        else:
            rows.append(
                Row(
                    f"dane {host}",
                    WARN,
                    f"{len(tlsa)} TLSA, AD=0 (not DNSSEC-validated: DANE does not use them): "
                    f"{shown}",
                )
            )
    if any(row.status != INFO for row in rows):
        rows.append(
            Row(
                "dane note",
                INFO,
                "AD as the resolver answered; it means validated only from a validating "
                "resolver you trust (deliverer: a local one)",
            )
        )
    return rows


def _asking_for_ad(resolver: dns.asyncresolver.Resolver) -> dns.asyncresolver.Resolver:
    """A copy of ``resolver`` that sets AD in queries (RFC 6840 5.7: a validating resolver
    then says whether the answer validated)."""
    asking = dns.asyncresolver.Resolver(configure=False)
    asking.nameservers = resolver.nameservers
    asking.port = resolver.port
    asking.lifetime = resolver.lifetime
    asking.timeout = resolver.timeout
    asking.flags = dns.flags.RD | dns.flags.AD
    return asking


async def check_tlsrpt(lookup: Lookup, domain: str) -> Row:
    """The TLS-RPT record (RFC 8460 3): where reports about mail to ``domain`` go."""
    name = tlsrpt_name(domain)
    try:
        rua = tlsrpt_rua(await lookup.txt(name))
    except LookupFailed as exc:
        return Row("tls-rpt", FAIL, f"lookup failed: {exc}")
    except TlsRptInvalid as exc:
        return Row("tls-rpt", FAIL, f"{name}: {exc}")
    if rua is None:
        return Row("tls-rpt", INFO, f"no v=TLSRPTv1 TXT record at {name}")
    return Row("tls-rpt", OK, f"reports to {', '.join(rua)}")

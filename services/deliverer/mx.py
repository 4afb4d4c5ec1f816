"""Find where a recipient domain's mail goes: MX hosts in order, with their addresses.

Owns: :class:`MxResolver` (async dnspython with configurable nameservers and ports), the
ordering rule (RFC 5321 5.1: ascending preference, random among equal preferences), implicit
MX (no MX record: the domain itself, from its A/AAAA records), null MX (RFC 7505: permanent
``5.1.10``), and a TTL cache with negative caching (RFC 2308). NXDOMAIN is permanent;
SERVFAIL and timeouts are temporary and never cached. Does not connect to anything.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from services.deliverer.config import split_hostport
from services.deliverer.metrics import DelivererMetrics
from services.deliverer.outcome import (
    DNS_TEMPORARY,
    NO_MAIL_HOST,
    NO_SUCH_DOMAIN,
    NULL_MX,
    DeliveryFailure,
)


@dataclass(frozen=True)
class MxHost:
    """One mail exchanger with the addresses to try, IPv4 first."""

    name: str
    preference: int
    addresses: tuple[str, ...]
    #: The MX RRset and the host's address records were DNSSEC-validated by a trusted
    #: validating resolver (DANE applies only then: RFC 7672 2.2).
    secure: bool = False


@dataclass(frozen=True)
class _Entry:
    expires: float
    value: tuple[tuple[int, str], ...] | tuple[str, ...] | None  # None: negative answer
    nxdomain: bool = False


class MxResolver:
    """Resolve MX hosts with a bounded TTL cache (one per process, no global state)."""

    def __init__(
        self,
        nameservers: list[str],
        *,
        timeout: float = 10.0,
        negative_ttl: float = 300.0,
        cache_size: int = 10000,
        metrics: DelivererMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._resolver = dns.asyncresolver.Resolver(configure=not nameservers)
        if nameservers:
            servers = [split_hostport(ns, 53) for ns in nameservers]
            self._resolver.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in servers]
        self._timeout = timeout
        self._negative_ttl = negative_ttl
        self._cache: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._cache_size = cache_size
        self._inflight: dict[tuple[str, str], asyncio.Future[_Entry]] = {}
        self._metrics = metrics
        self._clock = clock
        self._rng = rng or random.Random()

    async def resolve(self, domain: str) -> list[MxHost]:
        """The hosts to try for ``domain`` in order; raises :class:`DeliveryFailure` with
        :data:`NULL_MX`, :data:`NO_SUCH_DOMAIN`, :data:`NO_MAIL_HOST` (permanent) or
        :data:`DNS_TEMPORARY`."""
        started = time.perf_counter()
        result = "ok"
        try:
            exchangers = await self._lookup(domain, "MX")
            if exchangers is None:  # RFC 5321 5.1: no MX, the domain itself is the host
                result = "implicit"
                hosts = await self._hosts([(0, domain)], implicit=True)
            else:
                pairs = cast(tuple[tuple[int, str], ...], exchangers)
                hosts = await self._hosts(self._order(pairs), implicit=False)
            return hosts
        except DeliveryFailure as exc:
            result = _result_label(exc)
            raise
        finally:
            if self._metrics is not None:
                self._metrics.mx_lookups.labels(result).inc()
                self._metrics.mx_lookup_seconds.observe(time.perf_counter() - started)

    def _order(self, exchangers: tuple[tuple[int, str], ...]) -> list[tuple[int, str]]:
        real = [(pref, host) for pref, host in exchangers if host not in ("", ".")]
        if not real:  # RFC 7505 3: a single MX "0 ." says the domain accepts no mail
            raise DeliveryFailure(NULL_MX)
        shuffled = list(real)
        self._rng.shuffle(shuffled)  # random among equals (RFC 5321 5.1); sort is stable
        return sorted(shuffled, key=lambda pair: pair[0])

    async def _hosts(self, exchangers: list[tuple[int, str]], implicit: bool) -> list[MxHost]:
        looked_up = await asyncio.gather(
            *(self._addresses(host) for _, host in exchangers), return_exceptions=True
        )
        hosts: list[MxHost] = []
        temporary: DeliveryFailure | None = None
        for (pref, host), addresses in zip(exchangers, looked_up, strict=True):
            if isinstance(addresses, DeliveryFailure):
                if temporary is None and addresses.reply is DNS_TEMPORARY:
                    temporary = addresses
                continue
            if isinstance(addresses, BaseException):
                raise addresses
            if addresses:
                hosts.append(MxHost(host, pref, addresses))
        if hosts:
            return hosts
        if temporary is not None:
            raise temporary
        if not implicit:
            # An MX host without addresses is a (possibly temporary) misconfiguration: retry.
            names = ", ".join(host for _, host in exchangers)
            raise DeliveryFailure(DNS_TEMPORARY, f"no address for any MX host: {names}")
        raise DeliveryFailure(NO_MAIL_HOST)

    async def _addresses(self, host: str) -> tuple[str, ...]:
        v4, v6 = await asyncio.gather(self._lookup(host, "A"), self._lookup(host, "AAAA"))
        return cast(tuple[str, ...], tuple(v4 or ()) + tuple(v6 or ()))

    async def _lookup(self, name: str, rdtype: str) -> tuple[object, ...] | None:
        """Cached answer values; ``None`` for no data; raises for NXDOMAIN / temporary."""
        key = (name.lower().rstrip("."), rdtype)
        now = self._clock()
        entry = self._cache.get(key)
        if entry is not None and entry.expires > now:
            self._cache.move_to_end(key)
            if entry.nxdomain:
                raise DeliveryFailure(NO_SUCH_DOMAIN)
            return entry.value
        entry = await self._query_once(key, now)
        if entry.nxdomain:
            raise DeliveryFailure(NO_SUCH_DOMAIN)
        return entry.value

    async def _query_once(self, key: tuple[str, str], now: float) -> _Entry:
        """One query per name and type at a time: concurrent callers (every connection of a
        burst to a new domain) share the answer instead of each asking the server."""
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        # Not a background task: every caller awaits it (its failure reaches them all), and
        # the shield keeps one caller's cancellation from failing the others' lookups.
        task = asyncio.ensure_future(self._query(key[0], key[1], now))
        self._inflight[key] = task
        try:
            entry = await asyncio.shield(task)
        finally:
            del self._inflight[key]
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return entry

    async def _query(self, name: str, rdtype: str, now: float) -> _Entry:
        try:
            answer = await self._resolver.resolve(
                name + ".", rdtype, lifetime=self._timeout, search=False
            )
        except dns.resolver.NXDOMAIN:
            return _Entry(now + self._negative_ttl, None, nxdomain=True)
        except dns.resolver.NoAnswer:
            return _Entry(now + self._negative_ttl, None)
        except dns.exception.DNSException as exc:  # SERVFAIL, timeouts, malformed answers
            raise DeliveryFailure(DNS_TEMPORARY, dns_failure_words(name, rdtype, exc)) from exc
        ttl = answer.rrset.ttl if answer.rrset is not None else 0
        value: tuple[tuple[int, str], ...] | tuple[str, ...]
        if rdtype == "MX":
            value = tuple(
                (int(r.preference), r.exchange.to_text(omit_final_dot=True)) for r in answer
            )
        else:
            value = tuple(r.to_text() for r in answer)
        return _Entry(now + ttl, value)


def dns_failure_words(name: str, rdtype: str, exc: dns.exception.DNSException) -> str:
    """What went wrong with a lookup, in words an operator can act on: which resolver did
    not answer or what it answered ("no DNS answer for example.com (MX): resolver
    10.0.0.2 did not answer")."""
    errors = exc.kwargs.get("errors") or []
    reasons = [_server_error(error) for error in errors]
    why = "; ".join(dict.fromkeys(reasons)) or f"{type(exc).__name__}: {exc}"
    return f"no DNS answer for {name} ({rdtype}): {why}"


def _server_error(error: tuple[object, ...]) -> str:
    """One of dnspython's ``(server, tcp, port, error, answer)`` entries, in words."""
    server, _tcp, port, problem = error[0], error[1], error[2], error[3]
    # dnspython names a server "Do53:<address>@<port>"; the address is what people know.
    address = str(server).partition(":")[2].rpartition("@")[0] or str(server)
    where = f"resolver {address}" + (f" port {port}" if port != 53 else "")
    if isinstance(problem, dns.exception.Timeout):
        return f"{where} did not answer"
    if isinstance(problem, OSError):
        return f"{where} unreachable ({problem.strerror or problem})"
    if isinstance(problem, str):  # an rcode: SERVFAIL, REFUSED ...
        return f"{where} answered {problem}"
    return f"{where} failed: {problem}"


def _result_label(exc: DeliveryFailure) -> str:
    if exc.reply is NULL_MX:
        return "null_mx"
    if exc.reply is NO_SUCH_DOMAIN or exc.reply is NO_MAIL_HOST:
        return "nxdomain"
    return "temporary"

"""Find where a recipient domain's mail goes: MX hosts in order, with their addresses.

Owns: :class:`MxResolver` (async dnspython with configurable nameservers and ports), the
ordering rule (RFC 5321 5.1: ascending preference, random among equal preferences), implicit
MX (no MX record: the domain itself, from its A/AAAA records), null MX (RFC 7505: permanent
``5.1.10``), and a TTL cache with negative caching (RFC 2308). NXDOMAIN is permanent;
SERVFAIL and timeouts are temporary and never cached. Does not connect to anything.

DNSSEC (``dnssec=True``, ``[deliverer.dane]``): every query carries the EDNS DO bit and each
answer keeps the AD bit of the response, so an :class:`MxHost` says whether its MX RRset and
address records were validated (``secure``), which DANE needs (RFC 7672 2.2). The AD bit is
only as good as the resolver that set it and the path to it: configuration allows this only
with validating resolvers on loopback (``config.py``).
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
import dns.flags
import dns.message
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
from shared.singleflight import SingleFlight


@dataclass(frozen=True)
class MxHost:
    """One mail exchanger with the addresses to try, IPv4 first."""

    name: str
    preference: int
    addresses: tuple[str, ...]
    #: The MX RRset (or, for an implicit MX, its secure absence) and the host's A and AAAA
    #: answers were all DNSSEC-validated by a trusted resolver (RFC 7672 2.2).
    secure: bool = False


@dataclass(frozen=True)
class SecureAnswer:
    """One lookup's records as text (``None``: NXDOMAIN or no data) and whether the
    resolver validated the answer (its AD bit; always False without ``dnssec``)."""

    values: tuple[str, ...] | None
    secure: bool


@dataclass(frozen=True)
class _Entry:
    expires: float
    value: tuple[tuple[int, str], ...] | tuple[str, ...] | None  # None: negative answer
    nxdomain: bool = False
    secure: bool = False  # the response had the AD bit (only asked for with dnssec)


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
        dnssec: bool = False,
    ) -> None:
        self._resolver = dns.asyncresolver.Resolver(configure=not nameservers)
        if nameservers:
            servers = [split_hostport(ns, 53) for ns in nameservers]
            self._resolver.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in servers]
        self.dnssec = dnssec
        if dnssec:
            # DO asks the validating resolver for DNSSEC processing, and so for the AD bit
            # (RFC 3225, RFC 6840 5.8); 1232 octets avoids IP fragmentation (DNS flag day 2020).
            self._resolver.use_edns(0, dns.flags.DO, 1232)
        self._timeout = timeout
        self._negative_ttl = negative_ttl
        self._cache: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._cache_size = cache_size
        self._flights: SingleFlight[tuple[str, str], _Entry] = SingleFlight()
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
            mx = await self._lookup(domain, "MX")
            if mx.value is None:  # RFC 5321 5.1: no MX, the domain itself is the host
                result = "implicit"
                hosts = await self._hosts([(0, domain)], implicit=True, secure=mx.secure)
            else:
                pairs = cast(tuple[tuple[int, str], ...], mx.value)
                hosts = await self._hosts(self._order(pairs), implicit=False, secure=mx.secure)
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

    async def lookup(self, name: str, rdtype: str) -> SecureAnswer:
        """Any record type through the same cache and in-flight sharing (DANE's TLSA), with
        the answer's AD bit; NXDOMAIN is an answer (``values`` None) here, not an error.
        Raises :class:`DeliveryFailure` with :data:`DNS_TEMPORARY` for SERVFAIL (which is
        what a validating resolver answers for a bogus answer) and timeouts."""
        key = (name.lower().rstrip("."), rdtype)
        now = self._clock()
        entry = self._cache.get(key)
        if entry is None or entry.expires <= now:
            entry = await self._query_once(key, now)
        else:
            self._cache.move_to_end(key)
        return SecureAnswer(cast(tuple[str, ...] | None, entry.value), entry.secure)

    async def _hosts(
        self, exchangers: list[tuple[int, str]], implicit: bool, secure: bool
    ) -> list[MxHost]:
        looked_up = await asyncio.gather(
            *(self._addresses(host) for _, host in exchangers), return_exceptions=True
        )
        hosts: list[MxHost] = []
        temporary: DeliveryFailure | None = None
        for (pref, host), found in zip(exchangers, looked_up, strict=True):
            if isinstance(found, DeliveryFailure):
                if temporary is None and found.reply is DNS_TEMPORARY:
                    temporary = found
                continue
            if isinstance(found, BaseException):
                raise found
            addresses, addresses_secure = found
            if addresses:
                hosts.append(MxHost(host, pref, addresses, secure and addresses_secure))
        if hosts:
            return hosts
        if temporary is not None:
            raise temporary
        if not implicit:
            # An MX host without addresses is a (possibly temporary) misconfiguration: retry.
            names = ", ".join(host for _, host in exchangers)
            raise DeliveryFailure(DNS_TEMPORARY, f"no address for any MX host: {names}")
        raise DeliveryFailure(NO_MAIL_HOST)

    async def _addresses(self, host: str) -> tuple[tuple[str, ...], bool]:
        """The host's addresses, and whether both answers (data or none) were validated."""
        v4, v6 = await asyncio.gather(self._lookup(host, "A"), self._lookup(host, "AAAA"))
        addresses = cast(tuple[str, ...], tuple(v4.value or ()) + tuple(v6.value or ()))
        return addresses, v4.secure and v6.secure

    async def _lookup(self, name: str, rdtype: str) -> _Entry:
        """The cached entry (``value`` None for no data); raises for NXDOMAIN / temporary."""
        key = (name.lower().rstrip("."), rdtype)
        now = self._clock()
        entry = self._cache.get(key)
        if entry is not None and entry.expires > now:
            self._cache.move_to_end(key)
            if entry.nxdomain:
                raise DeliveryFailure(NO_SUCH_DOMAIN)
            return entry
        entry = await self._query_once(key, now)
        if entry.nxdomain:
            raise DeliveryFailure(NO_SUCH_DOMAIN)
        return entry

    async def _query_once(self, key: tuple[str, str], now: float) -> _Entry:
        """One query per name and type at a time: concurrent callers (every connection of a
        burst to a new domain) share the answer instead of each asking the server."""
        return await self._flights.run(key, lambda: self._query_and_keep(key, now))

    async def _query_and_keep(self, key: tuple[str, str], now: float) -> _Entry:
        entry = await self._query(key[0], key[1], now)
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
        except dns.resolver.NXDOMAIN as exc:
            responses = list(exc.kwargs.get("responses", {}).values())
            secure = bool(responses) and all(self._validated(r) for r in responses)
            return _Entry(now + self._negative_ttl, None, nxdomain=True, secure=secure)
        except dns.resolver.NoAnswer as exc:
            response = exc.kwargs.get("response")
            secure = response is not None and self._validated(response)
            return _Entry(now + self._negative_ttl, None, secure=secure)
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
        return _Entry(now + ttl, value, secure=self._validated(answer.response))

    def _validated(self, response: dns.message.Message) -> bool:
        # The AD bit means something only when we asked a resolver we trust for it.
        return self.dnssec and bool(response.flags & dns.flags.AD)


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

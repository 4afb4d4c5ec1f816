"""MTA-STS (RFC 8461) for the deliverer: a ``PolicySource`` (``policy.py``).

Owns :class:`MtaStsSource`: per recipient domain, the ``_mta-sts`` TXT record's policy id
(DNS, reused for at most ``txt_cache``), the policy in force (``mtasts_cache.py``, shared by
every replica through ``postline.mta-sts``), when to fetch it again, and what it asks of a
connection to one MX host (:meth:`MtaStsSource.host_policy`). Syntax is ``shared.mtasts``,
the HTTPS fetch ``shared.mtasts_fetch``; connecting and applying the answer is the
session's.

When to fetch (RFC 8461 5.1): when no policy is cached, when the cached one has expired
(``fetched_at + max_age``), or when the TXT record's id differs from the cached policy's.
A cached policy that has not expired stays in force when the fetch fails, when the TXT
record is gone or when DNS fails (an attacker who strips the record or blocks the policy
host must not turn a protected domain into an unprotected one); it is fetched again in the
background before it expires (``refresh_before``), so a busy domain seldom waits for a fetch.

Never a stall across domains: there is no global lock; one fetch (and one TXT query) per
domain at a time, which every lookup of that domain awaits, bounded by the fetch timeouts.
A slow policy host delays only the mail of its own domain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, cast

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver
from dns.rdtypes.ANY.TXT import TXT

from services.deliverer.config import DelivererConfig, MtaSts, split_hostport
from services.deliverer.transport.mtasts_cache import PolicyCache
from services.deliverer.transport.policy import (
    HostPolicy,
    PeerCheck,
    PolicyReport,
    ResultType,
    Security,
    TlsCheckFailed,
)
from shared.bus.base import Bus
from shared.mtasts import MtaStsError, StsPolicy, mx_matches, txt_name, txt_policy_id
from shared.singleflight import SingleFlight
from shared.wire.records import MtaStsPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Looks up a domain's ``_mta-sts`` TXT strings: (records, seconds the answer may be reused).
TxtLookup = Callable[[str], Awaitable[tuple[list[str], float]]]
#: Fetches and parses a domain's policy; raises :class:`~shared.mtasts.MtaStsError`.
PolicyFetch = Callable[[str], Awaitable[StsPolicy]]


#: Starts a background task by name (the stage's supervised ``spawn``: a task that dies
#: of an unexpected error is logged and holds readiness instead of vanishing).
Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]


def _unsupervised(work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(work, name=name)


class TxtLookupFailed(Exception):
    """The ``_mta-sts`` TXT query failed (timeout, SERVFAIL): the record's state is unknown."""


class MtaStsSource:
    """Policies of recipient domains, fetched once per domain and shared (module docstring)."""

    def __init__(
        self,
        cfg: MtaSts,
        cache: PolicyCache,
        *,
        lookup_txt: TxtLookup,
        fetch: PolicyFetch,
        clock: Callable[[], float] = time.time,
        txt_cache_size: int = 10000,
        close: Callable[[], Awaitable[None]] | None = None,
        spawn: Spawn = _unsupervised,
    ) -> None:
        self.cfg = cfg
        self._spawner = spawn
        self.cache = cache
        self._lookup_txt = lookup_txt
        self._fetch = fetch
        self._clock = clock  # wall clock: fetched_at is compared across restarts and replicas
        self._txt: OrderedDict[str, tuple[str | None, float]] = OrderedDict()
        self._txt_cache_size = txt_cache_size
        self._flights: SingleFlight[tuple[str, str], object] = SingleFlight()
        self._background: set[asyncio.Task[None]] = set()  # refreshes: cancelled at close
        self._publishing: set[asyncio.Task[None]] = set()  # finished at close
        self._close = close
        #: The last fetch failure per domain, until a fetch succeeds (for reports and logs),
        #: and when the domain may be fetched again (``fetch_retry``).
        self.failures: dict[str, MtaStsError] = {}
        self._retry_at: dict[str, float] = {}

    @classmethod
    def create(
        cls, cfg: DelivererConfig, bus: Bus | None, spawn: Spawn = _unsupervised
    ) -> MtaStsSource:
        """The production source: DNS through ``deliverer.nameservers`` (else the system's),
        policies over HTTPS (``shared.mtasts_fetch``, imported here: aiohttp loads only in a
        deliverer that uses MTA-STS) checked against ``mta_sts.ca_file``, else
        ``deliverer.ca_file``, else the system's CA store, cached on ``postline.mta-sts``
        when ``bus`` is given."""
        from shared.mtasts_fetch import PolicyFetcher  # noqa: PLC0415

        resolver = make_resolver(cfg.nameservers, cfg.timeouts.dns)
        sts = cfg.mta_sts
        fetcher = PolicyFetcher(
            ca_file=sts.ca_file or cfg.ca_file,
            resolver=resolver,
            port=sts.https_port,
            connect_timeout=sts.connect_timeout,
            timeout=sts.fetch_timeout,
            max_bytes=sts.max_policy_bytes,
        )
        return cls(
            sts,
            PolicyCache(bus),
            lookup_txt=lambda domain: lookup_txt(resolver, domain),
            fetch=fetcher.fetch,
            txt_cache_size=cfg.mx_cache_size,
            close=fetcher.close,
            spawn=spawn,
        )

    async def host_policy(self, domain: str, host: str, secure_mx: bool) -> HostPolicy | None:
        """What MTA-STS asks of a connection to MX ``host`` for ``domain``, or ``None`` (no
        policy, mode ``none``, MTA-STS disabled). ``enforce``: TLS with a WebPKI-valid
        certificate for ``host``, and a host outside the ``mx`` patterns is refused;
        ``testing``: the same checks, reported but not enforced (a host outside the
        patterns fails a check after the handshake, so it is reported too).
        ``secure_mx`` is DANE's concern, not MTA-STS's."""
        if not self.cfg.enabled:
            return None
        policy = await self.policy(domain)
        if policy is None:
            return self._unfetched(domain.lower().rstrip("."))
        if policy.mode not in ("enforce", "testing"):
            return None
        report = PolicyReport(domain.lower().rstrip("."), "sts", policy.lines, policy.mx)
        enforce = policy.mode == "enforce"
        outside: TlsCheckFailed | None = None
        if not any(mx_matches(pattern, host) for pattern in policy.mx):
            outside = TlsCheckFailed(
                ResultType.VALIDATION_FAILURE,
                f"{host} does not match the MTA-STS policy's mx patterns",
            )
        return HostPolicy(
            Security.MTA_STS,
            require_tls=True,
            verify_webpki=True,
            check=None if enforce or outside is None else _fails_with(outside),
            enforce=enforce,
            refused=outside if enforce else None,
            report=report,
        )

    def _unfetched(self, domain: str) -> HostPolicy | None:
        """A policy that was just fetched in vain (and none cached): the configuration
        decides, and the failure is reported with each connection until the next fetch."""
        failure = self.failures.get(domain)
        if failure is None or self._retry_at.get(domain, 0.0) <= self._clock():
            return None
        noted = TlsCheckFailed(ResultType(failure.result_type), str(failure))
        return HostPolicy(
            Security.MTA_STS, report=PolicyReport(domain, "sts"), noted=noted, inherit=True
        )

    async def policy(self, domain: str) -> MtaStsPolicy | None:
        """The policy in force for ``domain`` now (mode ``none`` included), or ``None``."""
        domain = domain.lower().rstrip(".")
        now = self._clock()
        cached = self.cache.get(domain)
        fresh = cached if cached is not None and _expires(cached) > now else None
        try:
            policy_id = await self._policy_id(domain, now)
        except TxtLookupFailed as exc:
            log.info("MTA-STS TXT lookup failed", extra={"domain": domain, "error": str(exc)})
            return fresh
        if policy_id is None:
            # RFC 8461 3.1/10.2: a missing record does not end a cached policy; publishing
            # mode "none" under a new id does.
            return fresh
        if self._retry_at.get(domain, 0.0) > now:
            return fresh  # fetched in vain a moment ago: not once per connection
        if fresh is not None and fresh.policy_id == policy_id:
            if _expires(fresh) - now < min(self.cfg.refresh_before, fresh.max_age / 2):
                self._refresh_in_background(domain, policy_id)
            return fresh
        try:
            return await self._once(
                ("fetch", domain), lambda: self._fetch_and_store(domain, policy_id)
            )
        except MtaStsError:
            return fresh  # RFC 8461 5.1: keep using an unexpired cached policy

    async def _policy_id(self, domain: str, now: float) -> str | None:
        known = self._txt.get(domain)
        if known is not None and known[1] > now:
            self._txt.move_to_end(domain)
            return known[0]
        records, ttl = await self._once(("txt", domain), lambda: self._lookup_txt(domain))
        policy_id = txt_policy_id(records)
        self._txt[domain] = (policy_id, now + min(ttl, self.cfg.txt_cache))
        self._txt.move_to_end(domain)
        while len(self._txt) > self._txt_cache_size:
            self._txt.popitem(last=False)
        return policy_id

    async def _fetch_and_store(self, domain: str, policy_id: str) -> MtaStsPolicy:
        try:
            sts = await self._fetch(domain)
        except MtaStsError as exc:
            self._failed(domain, exc)
            log.warning(
                "MTA-STS policy fetch failed",
                extra={"domain": domain, "result_type": exc.result_type, "error": str(exc)},
            )
            raise
        self.failures.pop(domain, None)
        self._retry_at.pop(domain, None)
        policy = MtaStsPolicy(
            domain=domain,
            policy_id=policy_id,
            mode=sts.mode,
            max_age=sts.max_age,
            mx=sts.mx,
            lines=sts.lines,
            fetched_at=self._clock(),
        )
        self.cache.keep(policy)
        # Published in the background: the domain's mail waits for the fetch, not for the
        # bus (a slow or unavailable bus must not hold deliveries to this domain).
        self._spawn(self.cache.publish(policy), self._publishing, f"mta-sts-publish:{domain}")
        return policy

    def _failed(self, domain: str, exc: MtaStsError) -> None:
        self.failures.pop(domain, None)  # re-inserted last: the oldest go first below
        self.failures[domain] = exc
        self._retry_at[domain] = self._clock() + self.cfg.fetch_retry
        while len(self.failures) > self._txt_cache_size:
            oldest = next(iter(self.failures))
            del self.failures[oldest]
            self._retry_at.pop(oldest, None)

    async def _once(self, key: tuple[str, str], start: Callable[[], Awaitable[T]]) -> T:
        """Run ``start()`` unless the same work for the same domain is under way: then wait
        for that one (``shared.singleflight``)."""
        return cast(T, await self._flights.run(key, start))

    def _refresh_in_background(self, domain: str, policy_id: str) -> None:
        if ("fetch", domain) in self._flights:
            return

        async def refresh() -> None:
            # A failed fetch keeps the cached policy in force; failures[] says why.
            with contextlib.suppress(MtaStsError):
                await self._once(
                    ("fetch", domain), lambda: self._fetch_and_store(domain, policy_id)
                )

        self._spawn(refresh(), self._background, f"mta-sts-refresh:{domain}")

    def _spawn(
        self, work: Coroutine[Any, Any, None], tasks: set[asyncio.Task[None]], name: str
    ) -> None:
        """Run ``work`` in the background, remembered in ``tasks`` until done."""
        task = self._spawner(work, name)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def close(self) -> None:
        """Cancel background refreshes, finish publishing fetched policies (each bounded by
        the bus's own timeouts), close the HTTP client."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, *self._publishing, return_exceptions=True)
        if self._close is not None:
            await self._close()


def _expires(policy: MtaStsPolicy) -> float:
    return policy.fetched_at + policy.max_age


def _fails_with(failure: TlsCheckFailed) -> PeerCheck:
    """A check that always fails: ``testing`` reports a host outside the patterns after the
    handshake (the session then reports it and delivers anyway)."""

    def check(_tls: ssl.SSLObject, _host: str) -> None:
        raise failure

    return check


def make_resolver(nameservers: list[str], timeout: float) -> dns.asyncresolver.Resolver:
    """A resolver asking ``nameservers`` ("ip" or "ip:port"), else the system's."""
    resolver = dns.asyncresolver.Resolver(configure=not nameservers)
    if nameservers:
        servers = [split_hostport(ns, 53) for ns in nameservers]
        resolver.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in servers]
    resolver.lifetime = timeout
    return resolver


async def lookup_txt(resolver: dns.asyncresolver.Resolver, domain: str) -> tuple[list[str], float]:
    """``_mta-sts.<domain>``'s TXT records (each one's strings joined, RFC 8461 3.1) and their
    TTL; no record is ``([], 300)``; raises :class:`TxtLookupFailed` for a failed query."""
    name = txt_name(domain) + "."
    try:
        answer = await resolver.resolve(name, "TXT", search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return [], 300.0
    except dns.exception.DNSException as exc:
        raise TxtLookupFailed(f"TXT {name}: {type(exc).__name__}: {exc}") from exc
    records = [
        b"".join(rr.strings).decode("utf-8", "replace") for rr in answer if isinstance(rr, TXT)
    ]
    return records, float(answer.rrset.ttl if answer.rrset is not None else 0)

"""Connections to a destination: which host and address to try, from which source address.

Owns: :class:`Connector`, which turns a recipient domain into an open
:class:`~services.deliverer.session.Session`: through the smarthost route when one applies,
else through the MX hosts in order (RFC 5321 5.1: on a refused or failed connection, or a 4xx
greeting, try the next address, then the next host), bound to the queue's source address with
its EHLO name (``[pools]``, chosen by ``sources.py``) or, when no pool applies, to an address
of the policy's ``source_pool`` in ``deliverer.source_pools`` (round robin per connection, the
EHLO name stays ``deliverer.ehlo_name``), and counts open connections per provider.
Does not hold idle sessions: each worker in ``queue.py`` keeps its own for reuse.
"""

from __future__ import annotations

import itertools
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib

from services.deliverer.config import DelivererConfig, Policy, Route, split_hostport
from services.deliverer.metrics import DelivererMetrics
from services.deliverer.mx import MxHost, MxResolver
from services.deliverer.outcome import NO_ANSWER, TLS_UNAVAILABLE, DeliveryFailure
from services.deliverer.session import Session, SessionOptions, Target, client_tls_context
from services.deliverer.sources import OS_SOURCE, Source
from shared.errors import ConfigError
from shared.providers import provider_for_host

#: RFC 8314 / common practice: submission with STARTTLS on 587, implicit TLS on 465.
SUBMISSION_PORT = 587
SUBMISSIONS_PORT = 465


@dataclass(frozen=True)
class Destination:
    """Where a domain's mail goes right now: MX hosts (or the smarthost) and the provider."""

    hosts: tuple[MxHost, ...]
    provider: str
    route: Route | None = None
    route_port: int = 0  # the smarthost's port (MX hosts use ``smtp_port``)


class Connector:
    """Opens sessions for any destination; one per deliverer process."""

    def __init__(
        self, cfg: DelivererConfig, resolver: MxResolver, metrics: DelivererMetrics
    ) -> None:
        self._cfg = cfg
        self._resolver = resolver
        self._metrics = metrics
        self._pools: dict[str, Iterator[str]] = {
            name: itertools.cycle(addresses)
            for name, addresses in cfg.source_pools.items()
            if addresses
        }
        # Built once: loading the CA store costs about 20 ms per context.
        self._tls = {verify: client_tls_context(verify) for verify in (False, True)}
        self._passwords = {
            id(route): _read_secret(route.password_file)
            for route in cfg.routes
            if route.password_file is not None
        }

    async def destination(self, domain: str) -> Destination:
        """Resolve ``domain`` (or its route); raises :class:`DeliveryFailure` from ``mx.py``."""
        route = self._cfg.route_for(domain)
        if route is not None:
            default = SUBMISSIONS_PORT if route.tls == "implicit" else SUBMISSION_PORT
            host, port = split_hostport(route.host, default)
            # A smarthost is reached through the system resolver (its name is ours to choose).
            smarthost = (MxHost(host, 0, (host,)),)
            return Destination(smarthost, provider_for_host(host), route, port)
        hosts = await self._resolver.resolve(domain)
        return Destination(tuple(hosts), provider_for_host(hosts[0].name))

    async def open(
        self, destination: Destination, policy: Policy, source: Source = OS_SOURCE
    ) -> Session:
        """A session to the first host that answers, from ``source``; raises
        :class:`DeliveryFailure`."""
        last: DeliveryFailure | None = None
        tried: list[str] = []  # what each target did, for the mail log
        for host, address, port in self._targets(destination):
            options = self._options(destination, policy, source)
            target = Target(host, address, port)
            try:
                session = await Session.open(target, options)
            except DeliveryFailure as exc:  # TLS required and not offered: the next may
                last = exc
                tried.append(f"{target.relay}: {exc.reply.text}")
                continue
            except (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError) as exc:
                tried.append(f"{target.relay}: {connect_failure_words(exc)}")
                continue  # refused, unreachable, 4xx/5xx greeting: RFC 5321 5.1, next one
            self._metrics.connections.labels(destination.provider).inc()
            return session
        detail = "; ".join(tried)
        if last is not None and last.reply is TLS_UNAVAILABLE:
            raise DeliveryFailure(last.reply, detail)
        raise DeliveryFailure(NO_ANSWER, f"{NO_ANSWER.text}: {detail or 'no address to try'}")

    async def close(self, session: Session, provider: str) -> None:
        """QUIT and forget a session opened by :meth:`open`."""
        await session.close()
        self._metrics.connections.labels(provider).dec()

    def _targets(self, destination: Destination) -> Iterator[tuple[str, str, int]]:
        if destination.route is not None:
            host = destination.hosts[0]
            yield host.name, host.addresses[0], destination.route_port
            return
        for host in destination.hosts:
            for address in host.addresses:
                yield host.name, address, self._cfg.smtp_port

    def _options(self, destination: Destination, policy: Policy, chosen: Source) -> SessionOptions:
        pool = self._pools.get(policy.source_pool)
        source = chosen.address or (next(pool) if pool is not None else None)
        ehlo_name = chosen.ehlo_name or self._cfg.ehlo_name
        route = destination.route
        if route is None:
            return SessionOptions(
                ehlo_name=ehlo_name,
                timeouts=self._cfg.timeouts,
                tls=policy.tls,
                verify_certs=policy.verify_certs,
                source_address=source,
                tls_context=self._tls[policy.verify_certs],
            )
        return SessionOptions(
            ehlo_name=ehlo_name,
            timeouts=self._cfg.timeouts,
            tls=route.tls,
            verify_certs=route.verify_certs,
            source_address=source,
            username=route.username,
            password=self._passwords.get(id(route), ""),
            tls_context=self._tls[route.verify_certs],
        )


def connect_failure_words(exc: BaseException) -> str:
    """Why a connection attempt failed, as Postfix says it ("Connection refused", "greeted
    with 421 4.3.2 try later", "timed out")."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"greeted with {exc.code} {' '.join(exc.message.split())}"
    if isinstance(exc, TimeoutError | aiosmtplib.SMTPTimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.errno:
        # asyncio's "Connect call failed ('192.0.2.1', 25)" says less than the errno does.
        return os.strerror(exc.errno)
    return f"{type(exc).__name__}: {exc}"


def _read_secret(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(str(path), "deliverer.routes.password_file", str(exc)) from exc

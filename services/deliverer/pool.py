"""Connections to a destination: which host and address to try, from which source address.

Owns: :class:`Connector`, which turns a recipient domain into an open
:class:`~services.deliverer.session.Session`: through the smarthost route when one applies,
else through the MX hosts in order (RFC 5321 5.1: on a refused or failed connection, or a 4xx
greeting, try the next address, then the next host), bound to the queue's source address with
its EHLO name (``[pools]``, chosen by ``sources.py``) or, when no pool applies, to an address
of the policy's ``source_pool`` in ``deliverer.source_pools`` (round robin per connection, the
EHLO name stays ``deliverer.ehlo_name``), and counts open connections per provider. Each MX
host's transport policy comes from the first policy source that has one (DANE, then
MTA-STS: RFC 8461 2), else from the destination's ``tls``/``verify_certs``; a host the policy
refuses, or whose connection fails it, is skipped for the next (RFC 8461 4.2, RFC 7672 2.2),
and every attempt's :class:`~services.deliverer.transport.policy.TlsOutcome` is handed to the
caller for its ``tls_session`` event.
Does not hold idle sessions: each worker in ``queue.py`` keeps its own for reuse.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib

from services.deliverer.config import DelivererConfig, Policy, Route, split_hostport
from services.deliverer.metrics import DelivererMetrics
from services.deliverer.mx import MxHost, MxResolver
from services.deliverer.outcome import (
    NO_ANSWER,
    TLS_POLICY_FAILED,
    TLS_UNAVAILABLE,
    DeliveryFailure,
)
from services.deliverer.session import Session, SessionOptions, Target
from services.deliverer.sources import OS_SOURCE, Source
from services.deliverer.transport import requirement
from services.deliverer.transport.handshake import client_tls_context
from services.deliverer.transport.policy import (
    HostPolicy,
    PolicySource,
    ResultType,
    TlsCheckFailed,
    TlsOutcome,
)
from shared.errors import ConfigError
from shared.providers import provider_for_host
from shared.tlsrequire import NONE, TlsRequirement
from shared.wire.records import SmtpReply

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
    domain: str = ""  # the recipient domain (whose published policies apply)


class Connector:
    """Opens sessions for any destination; one per deliverer process."""

    def __init__(
        self,
        cfg: DelivererConfig,
        resolver: MxResolver,
        metrics: DelivererMetrics,
        policy_sources: Sequence[PolicySource] = (),
    ) -> None:
        self._cfg = cfg
        self._resolver = resolver
        self._metrics = metrics
        self._policy_sources = tuple(policy_sources)  # in order of precedence
        self._pools: dict[str, Iterator[str]] = {
            name: itertools.cycle(addresses)
            for name, addresses in cfg.source_pools.items()
            if addresses
        }
        # Built once: loading the CA store costs about 20 ms per context.
        ca_file = str(cfg.ca_file) if cfg.ca_file is not None else None
        self._tls = {verify: client_tls_context(verify, ca_file) for verify in (False, True)}
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
            return Destination(smarthost, provider_for_host(host), route, port, domain)
        hosts = await self._resolver.resolve(domain)
        return Destination(tuple(hosts), provider_for_host(hosts[0].name), domain=domain)

    async def open(
        self,
        destination: Destination,
        policy: Policy,
        source: Source = OS_SOURCE,
        outcomes: list[TlsOutcome] | None = None,
        need: TlsRequirement = NONE,
    ) -> Session:
        """A session to the first host that answers and meets its transport policy, made
        stricter or advisory by the message's ``need`` (``transport/requirement.py``), from
        ``source``; raises :class:`DeliveryFailure`. Every attempt that reached the TLS
        stage (or that a policy refused) is appended to ``outcomes``. REQUIRETLS: a host
        from unsigned DNS without MTA-STS, or one not offering REQUIRETLS, is skipped; when
        every host was, the message is returned (``550 5.7.30``, RFC 8689 4.2.1)."""
        last: DeliveryFailure | None = None
        checks: list[ResultType] = []  # the policy checks that failed
        tried: list[str] = []  # what each target did, for the mail log
        policies: dict[str, HostPolicy | None] = {}
        targets = 0
        unfit: list[SmtpReply] = []  # hosts that can never carry this REQUIRETLS message
        for host, address, port in self._targets(destination):
            targets += 1
            if host.name not in policies:
                policies[host.name] = await self._host_policy(destination, host)
            options = _inherited(self._options(destination, policy, source, policies[host.name]))
            options, unfit_reply = _for_message(options, need, host, destination)
            target = Target(host.name, address, port)
            if unfit_reply is not None:
                unfit.append(unfit_reply)
                tried.append(f"{target.relay}: {unfit_reply.text}")
                continue
            refused = options.host_policy.refused if options.host_policy else None
            if refused is not None:  # not to be connected to at all
                checks.append(refused.result_type)
                tried.append(f"{target.relay}: {refused.detail}")
                self._note(outcomes, _refused_outcome(options, target, refused))
                continue
            try:
                session = await Session.open(target, options)
            except TlsCheckFailed as exc:  # the host did not meet its policy: the next may
                checks.append(exc.result_type)
                tried.append(f"{target.relay}: {exc.detail}")
                self._note(outcomes, exc.outcome)
                continue
            except DeliveryFailure as exc:
                last = exc
                tried.append(f"{target.relay}: {exc.reply.text}")
                continue
            except (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError) as exc:
                tried.append(f"{target.relay}: {connect_failure_words(exc)}")
                continue  # refused, unreachable, 4xx/5xx greeting: RFC 5321 5.1, next one
            self._note(outcomes, session.tls_outcome)
            if need.requiretls and not session.offers_requiretls:
                # RFC 8689 4.2.1 (4): QUIT and try the next MX host.
                await session.close()
                unfit.append(requirement.REQUIRETLS_UNSUPPORTED)
                tried.append(f"{target.relay}: does not offer REQUIRETLS")
                continue
            session.need = need
            self._metrics.connections.labels(destination.provider).inc()
            return session
        if unfit and len(unfit) == targets:
            # Every host fell short for good; any other failure (a handshake, a refused
            # connection) may pass, so the message waits for it as usual.
            raise DeliveryFailure(unfit[-1], "; ".join(tried))
        raise _no_session(checks, last, "; ".join(tried))

    async def _host_policy(self, destination: Destination, host: MxHost) -> HostPolicy | None:
        """The first published policy for ``host`` (None: the configuration decides)."""
        if destination.route is not None:  # a smarthost is ours: its route decides
            return None
        for source in self._policy_sources:
            found = await source.host_policy(destination.domain, host.name, host.secure)
            if found is not None:
                return found
        return None

    def _note(self, outcomes: list[TlsOutcome] | None, outcome: TlsOutcome | None) -> None:
        if outcomes is not None and outcome is not None:
            outcomes.append(outcome)

    async def close(self, session: Session, provider: str) -> None:
        """QUIT and forget a session opened by :meth:`open`."""
        await session.close()
        self._metrics.connections.labels(provider).dec()

    def _targets(self, destination: Destination) -> Iterator[tuple[MxHost, str, int]]:
        if destination.route is not None:
            host = destination.hosts[0]
            yield host, host.addresses[0], destination.route_port
            return
        for host in destination.hosts:
            for address in host.addresses:
                yield host, address, self._cfg.smtp_port

    def _options(
        self,
        destination: Destination,
        policy: Policy,
        chosen: Source,
        host_policy: HostPolicy | None = None,
    ) -> SessionOptions:
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
                host_policy=host_policy,
                verified_context=self._tls[True],
                unverified_context=self._tls[False],
            )
        return SessionOptions(
            ehlo_name=ehlo_name,
            timeouts=self._cfg.timeouts,
            tls=route.tls,
            verify_certs=route.verify_certs,
            source_address=source,
            username=route.username,
            password=self._passwords.get(id(route), ""),
            verified_context=self._tls[True],
            unverified_context=self._tls[False],
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


def _no_session(
    checks: list[ResultType], last: DeliveryFailure | None, detail: str
) -> DeliveryFailure:
    """Why no host gave a session: a policy check, TLS unavailable, or no answer."""
    if checks:
        # "Not available" only when no host offered TLS at all; a certificate or policy
        # failure anywhere is the operator's better lead.
        unavailable = all(c is ResultType.STARTTLS_NOT_SUPPORTED for c in checks)
        return DeliveryFailure(TLS_UNAVAILABLE if unavailable else TLS_POLICY_FAILED, detail)
    if last is not None and last.reply is TLS_UNAVAILABLE:
        return DeliveryFailure(last.reply, detail)
    return DeliveryFailure(NO_ANSWER, f"{NO_ANSWER.text}: {detail or 'no address to try'}")


def _inherited(options: SessionOptions) -> SessionOptions:
    """``options`` whose published policy leaves the decision to the configuration (a
    fetch failure's ``inherit``): the configured policy, carrying the published policy's
    report and noted failure."""
    published = options.host_policy
    if published is None or not published.inherit:
        return options
    configured = dataclasses.replace(options, host_policy=None).effective_policy()
    return dataclasses.replace(
        options,
        host_policy=dataclasses.replace(configured, report=published.report, noted=published.noted),
    )


def _for_message(
    options: SessionOptions, need: TlsRequirement, host: MxHost, destination: Destination
) -> tuple[SessionOptions, SmtpReply | None]:
    """``options`` under the message's TLS requirement, and why this host can never carry
    it (REQUIRETLS from unsigned DNS without MTA-STS), if so."""
    if need is NONE:
        return options, None
    policy = requirement.apply(options.effective_policy(), need)
    strict = dataclasses.replace(options, host_policy=policy)
    # A smarthost is our own choice of next hop: no DNS to distrust.
    secure = host.secure or destination.route is not None
    return strict, requirement.refusal(need, strict.effective_policy(), secure)


def _refused_outcome(
    options: SessionOptions, target: Target, refused: TlsCheckFailed
) -> TlsOutcome:
    """The outcome of a host its policy says not to connect to."""
    policy = options.effective_policy()
    return TlsOutcome(
        policy.security,
        policy.report,
        failure=refused.result_type,
        detail=refused.detail,
        mx=target.host,
        mx_address=target.address,
        source=options.source_address or "",
    )


def _read_secret(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(str(path), "deliverer.routes.password_file", str(exc)) from exc

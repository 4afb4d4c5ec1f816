"""A real validating resolver for tests: Debian's unbound on 127.0.0.1, an ephemeral port.

DANE trusts the AD bit of a validating resolver (RFC 7672 2.1.1), so the DANE tests ask a
real one instead of setting the bit themselves: this unbound validates the signed zones of a
:class:`~testing.dnsserver.DnsServer` against their trust anchors, and resolves every name
(the root zone ``.`` included, so nothing leaves the machine) from that server alone.

    async with DnsServer(records, signed=["dane.test"]) as dns:
        async with Unbound(dns, ["dane.test"], tmp_path) as resolver:
            nameservers = [resolver.address]          # "127.0.0.1:PORT"

    async with validating(records, ["dane.test"], tmp_path) as (dns, resolver): ...

``deploy/local/unbound.sh install`` installs unbound (``make test`` runs it); the process is
started and stopped by its PID here, one per ``async with``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from types import TracebackType

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode

from testing.dnsserver import DnsServer, Records


def unbound_binary() -> str | None:
    """The unbound executable, or None when it is not installed (it lives in /usr/sbin,
    which is not on every PATH)."""
    found = shutil.which("unbound")
    if found is not None:
        return found
    return "/usr/sbin/unbound" if Path("/usr/sbin/unbound").is_file() else None


def _free_port() -> int:
    # unbound needs one number for UDP and TCP; a TCP port found free is almost always free
    # for UDP too, and a clash makes unbound exit, which start() reports.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class UnboundError(RuntimeError):
    """unbound did not start (its log is in the message)."""


class Unbound:
    """A validating unbound answering from ``dns`` only, with trust anchors for ``signed``."""

    def __init__(
        self,
        dns: DnsServer,
        signed: Iterable[str],
        directory: Path,
        *,
        binary: str | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        self.dns = dns
        self.signed = list(signed)
        self.directory = directory
        self.binary = binary or unbound_binary()
        self.startup_timeout = startup_timeout
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None

    @property
    def address(self) -> str:
        """``"127.0.0.1:PORT"``, the form ``deliverer.nameservers`` takes."""
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        """What unbound logged (validation failures name the reason at val-log-level 2)."""
        path = self.directory / "unbound.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def config(self) -> str:
        """The generated unbound.conf."""
        anchors = "".join(
            f'    trust-anchor: "{self.dns.trust_anchor(zone)}"\n' for zone in self.signed
        )
        return (
            "server:\n"
            "    interface: 127.0.0.1\n"
            f"    port: {self.port}\n"
            "    access-control: 127.0.0.0/8 allow\n"
            "    do-ip6: no\n"
            "    do-daemonize: no\n"
            '    username: ""\n'
            '    chroot: ""\n'
            f'    directory: "{self.directory}"\n'
            f'    pidfile: "{self.directory / "unbound.pid"}"\n'
            f'    logfile: "{self.directory / "unbound.log"}"\n'
            "    use-syslog: no\n"
            "    verbosity: 1\n"
            "    val-log-level: 2\n"
            '    module-config: "validator iterator"\n'
            # The test server is on loopback, which unbound refuses to query by default.
            "    do-not-query-localhost: no\n"
            # The test server answers empty non-terminals as a real zone would, but asking
            # the full name at once keeps the query log (dns.queries) easy to read.
            "    qname-minimisation: no\n"
            # Every test sees its own records: nothing answered stays cached for long.
            "    cache-max-ttl: 5\n"
            "    cache-max-negative-ttl: 5\n"
            # No RFC 8145 key tag queries (_ta-XXXX) in the test server's query log.
            "    trust-anchor-signaling: no\n"
            # Names under "test." (RFC 6761 6.2; unbound answers them NXDOMAIN itself unless
            # told otherwise) are resolved from the test server; every other name is refused
            # here, so the root hints are never used and no query leaves the machine.
            '    local-zone: "." refuse\n'
            '    local-zone: "test." transparent\n'
            f"{anchors}"
            "stub-zone:\n"
            '    name: "test."\n'
            f"    stub-addr: {self.dns.host}@{self.dns.port}\n"
            "    stub-prime: no\n"
            "remote-control:\n"
            "    control-enable: no\n"
        )

    async def __aenter__(self) -> Unbound:
        if self.binary is None:
            raise UnboundError("unbound is not installed (deploy/local/unbound.sh install)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        conf = self.directory / "unbound.conf"
        conf.write_text(self.config())
        (self.directory / "unbound.log").write_text("")
        self._process = await asyncio.create_subprocess_exec(
            self.binary,
            "-d",
            "-c",
            str(conf),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _wait_ready(self) -> None:
        """Poll with a query unbound answers itself (``localhost.``, a built-in local
        zone), so readiness needs neither the test server nor validation."""
        assert self._process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.startup_timeout
        query = dns.message.make_query("localhost.", "A")
        while loop.time() < deadline:
            if self._process.returncode is not None:
                raise UnboundError(f"unbound exited ({self._process.returncode}):\n{self.log}")
            with contextlib.suppress(dns.exception.DNSException, OSError):
                reply = await dns.asyncquery.udp(query, "127.0.0.1", timeout=0.5, port=self.port)
                if reply.rcode() == dns.rcode.NOERROR:
                    return
            await asyncio.sleep(0.05)
        raise UnboundError(f"unbound not answering on {self.address}:\n{self.log}")

    async def stop(self) -> None:
        """Terminate our unbound (by its PID), kill it if it lingers."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def validating(
    records: Records, signed: Iterable[str], directory: Path, *, binary: str | None = None
) -> AsyncIterator[tuple[DnsServer, Unbound]]:
    """A :class:`DnsServer` signing the ``signed`` zones and an :class:`Unbound` in front of
    it with their trust anchors (names must end in ``.test``)."""
    zones = list(signed)
    async with contextlib.AsyncExitStack() as stack:
        dns = await stack.enter_async_context(DnsServer(records, signed=zones))
        resolver = Unbound(dns, zones, directory / "unbound", binary=binary)
        yield dns, await stack.enter_async_context(resolver)

"""OpenDKIM as the signing milter of the Postfix reference in ``make bench-compare``.

Owns installing Debian's ``opendkim`` package when it is missing (purged again afterwards by
the caller when this script installed it), generating an RSA-2048 key with ``openssl``,
writing a private config (relaxed/relaxed, sign only, one domain and selector, a loopback inet
socket) and running ``opendkim -f`` in the foreground as a child of this script, stopped by its
PID. /etc/opendkim.conf and the package's service are never used.

OpenDKIM refuses a config file or key under a directory other users can write, sticky or not
(/tmp), so key and config live in a directory of their own under /run (root's, 0755), made for
the run and removed by :meth:`OpenDkim.stop`; its log goes to the run's work directory.
Postfix is pointed at it by ``PostfixRelay(milter=...)``; it does not send or measure anything.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench import debian
from bench.sink import wait_listening

_PACKAGES = ("opendkim",)
SELECTOR = "bench"
#: Where the key and config directory is made: not writable by other users.
SAFE_BASE = Path("/run")

_CONF = """\
Syslog no
Background no
Mode s
Domain {domain}
Selector {selector}
KeyFile {key}
Canonicalization relaxed/relaxed
SignatureAlgorithm rsa-sha256
Socket {socket}
PidFile {workdir}/opendkim.pid
UMask 000
InternalHosts 127.0.0.1
"""


def installed() -> bool:
    """Whether the ``opendkim`` daemon is on this machine."""
    return shutil.which("opendkim") is not None


def install() -> None:
    """Install Debian's package non-interactively (root)."""
    debian.install(*_PACKAGES)


def purge() -> None:
    """Remove the package again (used only when :func:`install` put it there)."""
    debian.purge(*_PACKAGES)


class OpenDkim:
    """One private ``opendkim`` process signing for ``domain``, on ``127.0.0.1:port`` or,
    without a port, on a unix socket in its directory (Debian's default kind of socket)."""

    def __init__(self, logdir: Path, domain: str, port: int | None = None) -> None:
        """``logdir``: the run's work directory, where ``opendkim.log`` goes."""
        self.logdir = logdir
        self.domain = domain
        self.port = port
        self.workdir: Path | None = None  # key, config, pid file and socket; made by start()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def milter(self) -> str:
        """The socket as Postfix's ``smtpd_milters`` names it (only after :meth:`start`)."""
        if self.port is not None:
            return f"inet:127.0.0.1:{self.port}"
        return f"unix:{self._socket_path()}"

    def _socket_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "milter.sock"

    def start(self) -> int:
        """Key, config, process; waits for the socket; the process id."""
        self.workdir = Path(tempfile.mkdtemp(prefix="postline-bench-opendkim-", dir=SAFE_BASE))
        self.workdir.chmod(0o755)  # Postfix's smtpd (user postfix) reaches the socket
        key = self.workdir / f"{SELECTOR}.private"
        # RSA-2048 like Postline's signer; 0600 and owned by us: OpenDKIM refuses unsafe keys.
        subprocess.run(
            ["openssl", "genrsa", "-out", str(key), "2048"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        key.chmod(0o600)
        if self.port is not None:
            socket = f"inet:{self.port}@127.0.0.1"
        else:
            socket = f"local:{self._socket_path()}"
        conf = self.workdir / "opendkim.conf"
        conf.write_text(
            _CONF.format(
                domain=self.domain,
                selector=SELECTOR,
                key=key,
                socket=socket,
                workdir=self.workdir,
            )
        )
        self.logdir.mkdir(parents=True, exist_ok=True)
        with (self.logdir / "opendkim.log").open("ab") as log:
            self.proc = subprocess.Popen(
                ["opendkim", "-f", "-x", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 30
        if self.port is not None:
            wait_listening("127.0.0.1", self.port, deadline)
        else:
            while not self._socket_path().exists():
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise TimeoutError(f"opendkim did not open {self._socket_path()}")
                time.sleep(0.05)
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM the process by PID, SIGKILL it after a deadline; remove key and config."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        finally:
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)

"""Postfix as the reference relay of ``make bench-compare``, set up and torn down by the script.

Owns installing Debian's ``postfix`` package when it is missing (non-interactively, debconf
"No configuration", so the package writes no main.cf and starts nothing), running one Postfix
instance from a private config and queue directory under the benchmark's work directory
(``postfix -c DIR``; /etc/postfix and /var/spool/postfix are never touched), listening on a
loopback port and relaying everything to the sink (``relayhost = [ip]:port``, no DNS), then
stopping it and, when the script installed the package, purging it again so the machine is
left as it was found. It does not send or measure anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from bench import debian
from bench.sink import wait_listening

_PRESEED = "postfix postfix/main_mailer_type select No configuration\n"
_PACKAGES = ("postfix",)

#: The services a relay needs; chroot off (column 5) so no files are copied into the queue.
_MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60   1 pickup
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -    - proxymap
proxywrite unix - - n -    1 proxymap
smtp      unix  - - n -    - smtp
relay     unix  - - n -    - smtp
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.example
mydomain = bench.example
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [{sink_host}]:{sink_port}
smtp_dns_support_level = disabled
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file = {data}/maillog
maillog_file_prefixes = {data}
biff = no
"""

#: A signing milter (OpenDKIM): tempfail when it is unreachable, so unsigned mail never passes.
_MILTER_CF = """\
smtpd_milters = {milter}
non_smtpd_milters = $smtpd_milters
milter_default_action = tempfail
milter_protocol = 6
"""


def installed() -> bool:
    """Whether the ``postfix`` command is on this machine."""
    return shutil.which("postfix") is not None


def install() -> None:
    """Install Debian's package non-interactively (root; starts nothing: no main.cf yet)."""
    subprocess.run(["debconf-set-selections"], input=_PRESEED, text=True, check=True)
    debian.install(*_PACKAGES)


def purge() -> None:
    """Remove the package again (used only when :func:`install` put it there)."""
    debian.purge(*_PACKAGES)


class PostfixRelay:
    """One private Postfix instance relaying from ``127.0.0.1:port`` to the sink."""

    def __init__(
        self, workdir: Path, port: int, sink_host: str, sink_port: int, milter: str = ""
    ) -> None:
        """``milter``: a socket (``inet:127.0.0.1:PORT``) every message passes through."""
        self.port = port
        self.milter = milter
        self.workdir = workdir
        self.config_dir = workdir / "postfix-etc"
        self.queue = workdir / "postfix-spool"
        self.data = workdir / "postfix-data"
        self.sink = (sink_host, sink_port)

    def start(self) -> int:
        """Write the config, start the instance, wait for its port; the master's pid."""
        for path in (self.config_dir, self.data, self.queue):
            path.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)  # the postfix user must traverse to its queue and data
        shutil.chown(self.data, "postfix", "postfix")
        main_cf = _MAIN_CF.format(
            queue=self.queue, data=self.data, sink_host=self.sink[0], sink_port=self.sink[1]
        )
        if self.milter:
            main_cf += _MILTER_CF.format(milter=self.milter)
        (self.config_dir / "main.cf").write_text(main_cf)
        (self.config_dir / "master.cf").write_text(
            _MASTER_CF.format(listen=f"127.0.0.1:{self.port}")
        )
        self._postfix("start")
        wait_listening("127.0.0.1", self.port, time.monotonic() + 60)
        return self.master_pid()

    def master_pid(self) -> int:
        """The master process id (from the instance's own pid file)."""
        return int((self.queue / "pid" / "master.pid").read_text().split()[0])

    def queue_empty(self) -> bool:
        """No message left in the instance's incoming/active/deferred queues."""
        for name in ("incoming", "active", "deferred", "maildrop"):
            directory = self.queue / name
            if directory.exists() and any(p.is_file() for p in directory.rglob("*")):
                return False
        return True

    def stop(self) -> None:
        """Stop the instance (``postfix stop``, then ``abort`` if the master lingers)."""
        try:
            pid = self.master_pid()
        except (OSError, ValueError):
            return
        self._postfix("stop", check=False)
        deadline = time.monotonic() + 20
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            self._postfix("abort", check=False)

    def _postfix(self, command: str, check: bool = True) -> None:
        subprocess.run(
            ["postfix", "-c", str(self.config_dir), command],
            check=check,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

"""Optional end-to-end check: a real Prometheus scrapes ``postline run`` under a short load and
every dashboard query is executed through its HTTP API.

Everything binds to 127.0.0.1 on free ports in a temporary directory: a recording SMTP sink
(the recipients' MX, answering 550 to ``bounce-*`` recipients), ``postline run`` on the
embedded bus relaying everything to the sink, and Debian's ``prometheus`` scraping the HTTP
port every second with ``namespace="local"``. After the load, each dashboard query (Grafana
variables substituted) must execute without error; the ones that return no data are listed
(with ``--require-data`` they fail: Kafka lag, complaints or DKIM keys need a Kafka Exporter,
ARF reports or keys that this local run does not have). Not part of ``make k8s-check``
(it starts processes); run ``python deploy/check/e2e_prometheus.py``.
"""

from __future__ import annotations

import argparse
import json
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from common import MONITORING, tool
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from dashboards import expressions

CONFIG = """
[bus]
kind = "embedded"
[embedded]
path = "{root}/data/postline.db"
[http]
host = "127.0.0.1"
port = {http}
[log]
level = "warning"
[runtime]
data_dir = "{root}/data"
drain_timeout = "5s"
[ingest]
hostname = "mta.test"
trusted_networks = ["127.0.0.0/8"]
[[ingest.listeners]]
name = "relay"
host = "127.0.0.1"
port = {smtp}
mode = "relay"
[signer]
keys_dir = "{root}/dkim"
signing_domain = "example.test"
secret_file = "{root}/verp.key"
bounce_domain = "bounces.test"
[deliverer]
ehlo_name = "mta.test"
[[deliverer.routes]]
domains = ["*"]
host = "127.0.0.1:{sink}"
tls = "opportunistic"
verify_certs = false
[bouncer]
listen_host = "127.0.0.1"
listen_port = {bounces}
bounce_domain = "bounces.test"
secret_file = "{root}/verp.key"
"""
SCRAPE = """
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: postline-run
    static_configs:
      - targets: ["127.0.0.1:{http}"]
        labels: {{namespace: local}}
"""


class Sink:
    """The recipients' MX: accepts every message, 550 to ``bounce-*``, 451 to ``defer-*``."""

    def __init__(self) -> None:
        self.received = 0

    async def handle_RCPT(
        self,
        server: Any,
        session: Any,
        envelope: Any,
        address: str,
        options: list[str],
    ) -> str:
        if address.startswith("bounce-"):
            return "550 5.1.1 No such user"
        if address.startswith("defer-"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received += 1
        return "250 OK"


def write_dkim_key(directory: Path) -> None:
    """An Ed25519 DKIM key for example.test, selector s1 (the signer's file naming)."""
    directory.mkdir()
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (directory / "s1._domainkey.example.test.ed25519.pem").write_bytes(pem)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, predicate: Any, deadline: float = 60.0) -> None:
    """Poll ``predicate`` until true; raise with ``what`` at the deadline."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


def get_json(url: str) -> dict[str, Any]:
    """GET a JSON document."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def scrapes(prom: str) -> int:
    """Scrapes of ``postline run`` so far."""
    query = urllib.parse.urlencode({"query": "sum(count_over_time(up[1h]))"})
    result = get_json(f"{prom}/api/v1/query?{query}")["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def send_load(port: int, count: int) -> None:
    """Relay ``count`` messages, one recipient in ten bouncing and one in ten deferred."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        for i in range(count):
            kind = {0: "bounce", 5: "defer"}.get(i % 10, "user")
            rcpt = f"{kind}-{i}@dest.test"
            body = f"From: sender@example.test\r\nTo: {rcpt}\r\nSubject: load {i}\r\n\r\nhello\r\n"
            client.sendmail("sender@example.test", [rcpt], body)


def substitute(expr: str) -> str:
    """Grafana's variables as a dashboard would send them for this run."""
    for var, value in (("$__rate_interval", "30s"), ("$namespace", "local"), ("$stage", ".*")):
        expr = expr.replace(var, value)
    return expr


def run_queries(prom: str) -> tuple[list[str], list[str]]:
    """(errors, queries without data) for every dashboard query."""
    errors, empty = [], []
    for path in sorted((MONITORING / "dashboards").glob("*.json")):
        for where, expr in expressions(json.loads(path.read_text()), path.name):
            query = urllib.parse.urlencode({"query": substitute(expr)})
            try:
                answer = get_json(f"{prom}/api/v1/query?{query}")
            except OSError as exc:
                errors.append(f"{where}: {exc}")
                continue
            if answer.get("status") != "success":
                errors.append(f"{where}: {answer.get('error')}")
            elif not answer["data"]["result"]:
                empty.append(where)
    return errors, empty


def main(argv: list[str] | None = None) -> int:
    """Start everything, load, query, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--require-data", action="store_true")
    args = parser.parse_args(argv)
    sink = Sink()
    ports = {name: free_port() for name in ("http", "smtp", "sink", "bounces", "prom")}
    controller = Controller(sink, hostname="127.0.0.1", port=ports["sink"])
    controller.start()
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_dkim_key(root / "dkim")
        (root / "verp.key").write_text("0123456789abcdef0123456789abcdef\n")
        (root / "postline.toml").write_text(CONFIG.format(root=root, **ports))
        (root / "prometheus.yml").write_text(SCRAPE.format(**ports))
        try:
            procs.append(
                subprocess.Popen([tool("postline"), "--config", str(root / "postline.toml"), "run"])
            )
            http = f"http://127.0.0.1:{ports['http']}"
            wait_for(
                "postline /readyz", lambda: urllib.request.urlopen(f"{http}/readyz").status == 200
            )
            procs.append(
                subprocess.Popen(
                    [
                        "prometheus",
                        f"--config.file={root / 'prometheus.yml'}",
                        f"--storage.tsdb.path={root / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{ports['prom']}",
                        "--log.level=warn",
                    ]
                )
            )
            prom = f"http://127.0.0.1:{ports['prom']}"
            wait_for(
                "prometheus ready", lambda: urllib.request.urlopen(f"{prom}/-/ready").status == 200
            )
            send_load(ports["smtp"], args.messages)
            expected = args.messages - 2 * ((args.messages + 9) // 10)
            wait_for(f"{expected} messages at the sink", lambda: sink.received >= expected)
            # rate() needs points after the load: wait for ten more scrapes.
            after_load = scrapes(prom)
            wait_for("ten scrapes after the load", lambda: scrapes(prom) >= after_load + 10)
            errors, empty = run_queries(prom)
        finally:
            for proc in reversed(procs):
                proc.terminate()
                proc.wait(timeout=30)
            controller.stop()
    for where in empty:
        print(f"no data  {where}")
    for error in errors:
        print(f"ERROR    {error}")
    print(f"e2e: {sink.received} delivered, {len(errors)} query errors, {len(empty)} without data")
    return 1 if errors or (args.require_data and empty) else 0


if __name__ == "__main__":
    sys.exit(main())

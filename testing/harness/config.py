"""The Postline config file of a harness cluster: every stage's section, as TOML text.

One file serves both shapes: four stage processes (each gets its own HTTP port and instance
name through ``POSTLINE__HTTP__PORT`` / ``POSTLINE__RUNTIME__INSTANCE``, as Kubernetes would
set them) or one ``postline run`` process. Timings are shortened so a test sees a retry in
about a second; everything else is what production uses (STARTTLS + AUTH on submission, a
relay listener for trusted networks, VERP, dual DKIM signing, one-click unsubscribe).

It only renders text; materials (``materials.py``) and ports come from the caller.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from testing.harness.materials import Materials

BusKind = Literal["kafka", "embedded"]
SuppressionMode = Literal["refuse", "drop"]


@dataclass(frozen=True)
class Ports:
    """Every port a cluster listens on (all on 127.0.0.1 except the sinks' shared port)."""

    submission: int  # ingest, STARTTLS + AUTH
    relay: int  # ingest, trusted networks without AUTH
    bounce_intake: int  # bouncer SMTP for the bounce domain
    http: dict[str, int]  # process name ("ingest", ..., or "run") -> its HTTP port
    dns: int  # the harness DNS server (UDP and TCP)
    mx: int  # the sink MX hosts' shared port (the deliverer's smtp_port)


@dataclass(frozen=True)
class Settings:
    """What varies between clusters; the rest of the config is fixed."""

    bus: BusKind
    workdir: Path
    ports: Ports
    sender_domain: str
    bounce_domain: str
    unsubscribe_process: str  # whose HTTP port the unsubscribe URL names ("bouncer"/"run")
    kafka_bootstrap: str = ""
    topic_prefix: str = ""
    suppression: SuppressionMode = "refuse"
    extra: dict[str, str] = field(default_factory=dict)  # raw TOML appended (e.g. bench tuning)


def _q(value: object) -> str:
    """A TOML value: JSON's string escapes and arrays are valid TOML for these values."""
    if isinstance(value, Path):
        value = str(value)
    return json.dumps(value)


def render(settings: Settings, materials: Materials) -> str:
    """The whole config file."""
    return "\n".join(
        [
            _core(settings),
            _ingest(settings, materials),
            _signer(settings, materials),
            _deliverer(settings),
            _bouncer(settings, materials),
            *settings.extra.values(),
        ]
    )


def _core(s: Settings) -> str:
    bus = f'[bus]\nkind = {_q(s.bus)}\npublish_timeout = "10s"\n'
    if s.bus == "kafka":
        bus += (
            f"\n[kafka]\nbootstrap = {_q(s.kafka_bootstrap)}\n"
            f'topic_prefix = {_q(s.topic_prefix)}\ntransaction_timeout = "15s"\n'
            # The Kafka cluster is the four pipeline processes; the store would need a
            # PostgreSQL of its own (its tests are tests/services/store).
            "\n[store]\nenabled = false\n"
        )
    else:
        bus += f"\n[embedded]\npath = {_q(s.workdir / 'data' / 'postline.db')}\n"
    return (
        bus
        + f'\n[http]\nhost = "127.0.0.1"\nport = {next(iter(s.ports.http.values()))}\n'
        + '\n[log]\nlevel = "info"\nformat = "json"\n'
        + f'\n[runtime]\ninstance = "harness"\ndrain_timeout = "5s"\n'
        f"data_dir = {_q(s.workdir / 'data')}\n"
    )


def _ingest(s: Settings, m: Materials) -> str:
    return f"""
[ingest]
hostname = "ingest.harness.test"
users_file = {_q(m.users_file)}
trusted_networks = ["127.0.0.0/8"]
suppression = {_q(s.suppression)}

[[ingest.listeners]]
name = "submission"
port = {s.ports.submission}
mode = "submission"

[[ingest.listeners]]
name = "relay"
port = {s.ports.relay}
mode = "relay"

[ingest.tls]
cert = {_q(m.pki.cert)}
key = {_q(m.pki.key)}
"""


def _signer(s: Settings, m: Materials) -> str:
    # RFC 8058 requires an https:// URL; the harness POSTs to the same host, port and path
    # over plain HTTP (in production a TLS proxy sits in front of the bouncer's port).
    http_port = s.ports.http[s.unsubscribe_process]
    return f"""
[signer]
keys_dir = {_q(m.keys_dir)}
key_reload_interval = "1s"
bounce_domain = {_q(s.bounce_domain)}
secret_file = {_q(m.secret_file)}
unsubscribe_url = "https://127.0.0.1:{http_port}/unsubscribe/"
workers = 1
batch_size = 50
"""


def _deliverer(s: Settings) -> str:
    return f"""
[deliverer]
ehlo_name = "out.harness.test"
nameservers = ["127.0.0.1:{s.ports.dns}"]
smtp_port = {s.ports.mx}
flush_interval = "0.05s"
window_full_delay = "1s"

[deliverer.timeouts]
connect = "5s"
greeting = "10s"
ehlo = "10s"
mail = "10s"
rcpt = "10s"
data_init = "10s"
data_done = "20s"
idle = "2s"
dns = "3s"

[deliverer.retry]
first_delay = "1s"
factor = 1.0
jitter = 0.0
max_age = "10m"
"""


def _bouncer(s: Settings, m: Materials) -> str:
    return f"""
[bouncer]
listen_host = "127.0.0.1"
listen_port = {s.ports.bounce_intake}
bounce_domain = {_q(s.bounce_domain)}
secret_file = {_q(m.secret_file)}

[bouncer.dsn]
postmaster = "postmaster@{s.bounce_domain}"
reporting_mta = "out.harness.test"
"""

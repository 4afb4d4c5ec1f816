"""Cross-reference checks between each stage's Deployment and the config its pods load.

- The pod runs ``postline <stage> --config F`` (the stage's command: ``reputation-stage``
  for the reputation stage; as the real CLI parser reads its args) and F is mounted.
- ``http.port`` is the container's ``http`` port (probes and PodMonitors use that name);
  ingest's listeners (SMTP and the sending API) and the bouncer's SMTP port are container
  ports.
- Every file the stage's section names (TLS, users, DKIM keys, HMAC and admin secrets, the
  bounce rule table the reputation stage reads) is inside a volume mount of that Deployment.
- ``terminationGracePeriodSeconds`` covers the preStop pause plus ``runtime.drain_timeout``.
- The deliverer's section passes its own checks with the pod's environment (the DANE
  component sets ``nameservers`` and ``dane.enabled`` there, and DANE is refused unless every
  nameserver is on loopback).
Deployments that do not run Postline (rspamd of the scanning component) load no Postline
config and are left out. Owns these checks.
"""

from __future__ import annotations

from collections.abc import Iterable

from common import Manifest, Rendered, ref
from crossref_cli import postline_invocations
from postline_config import load_rendered_config, mounted, unmounted

from services.bouncer.config import load_bouncer_config
from services.deliverer.config import load as load_deliverer
from services.ingest.config import api_address
from services.ingest.config import load as load_ingest
from services.reputation.config import load_reputation_config
from services.signer.config import load_signer_config
from services.store.config import load as load_store
from shared.cli import build_parser, discover_stages
from shared.cli.parser import parse_error
from shared.config import Config
from shared.errors import ConfigError


def check(rendered: Rendered) -> list[str]:
    """Every problem in one overlay, each prefixed with the overlay's name."""
    problems: list[str] = []
    for doc in rendered.of_kind("Deployment"):
        if not any(postline_invocations(doc)):
            continue
        stage = (
            doc["spec"]["template"]["metadata"]
            .get("labels", {})
            .get("app.kubernetes.io/component", "")
        )
        config = load_rendered_config(rendered, doc)
        problems += _command(doc, stage)
        problems += _ports(doc, stage, config)
        problems += unmounted(doc, _files(stage, config))
        problems += _grace(doc, float(config.core.runtime.drain_timeout))
        problems += _deliverer(doc, stage, config)
    return [f"{rendered.overlay}: {problem}" for problem in problems]


def _container(doc: Manifest) -> Manifest:
    return doc["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def _command(doc: Manifest, stage: str) -> Iterable[str]:
    """The container runs ``postline <stage>`` with a mounted ``--config``, as the real
    parser reads its args (a line it refuses is ``crossref_cli``'s problem)."""
    args = [str(a) for a in _container(doc).get("args", [])]
    if parse_error(build_parser(discover_stages()), args) is not None:
        return
    parsed = build_parser(discover_stages()).parse_args(args)
    command = next((s.cli_command for s in discover_stages() if s.name == stage), stage)
    if parsed.command != command:
        yield f"{ref(doc)}: args {args} run {parsed.command!r}, not the stage {stage!r}"
    if parsed.config is None:
        yield f"{ref(doc)}: args {args} do not pass --config FILE"
    elif not mounted(doc, parsed.config):
        yield f"{ref(doc)}: config file {parsed.config} is not mounted"


def _ports(doc: Manifest, stage: str, config: Config) -> Iterable[str]:
    ports = {p.get("name"): p["containerPort"] for p in _container(doc).get("ports", [])}
    if ports.get("http") != config.core.http.port:
        yield (
            f"{ref(doc)}: container port 'http' {ports.get('http')} != "
            f"http.port {config.core.http.port}"
        )
    wanted: list[int] = []
    if stage == "ingest":
        ingest = load_ingest(config)
        wanted = [listener.port for listener in ingest.listeners]
        if ingest.api.listen:  # the HTTP sending API's listener
            wanted.append(api_address(ingest.api.listen)[1])
    elif stage == "bouncer":
        wanted = [load_bouncer_config(config).listen_port]
    for port in wanted:
        if port not in ports.values():
            yield (
                f"{ref(doc)}: the config listens on {port}, "
                f"not a container port {sorted(ports.values())}"
            )


def _files(stage: str, config: Config) -> list[str]:
    if stage == "ingest":
        ingest = load_ingest(config)
        return [str(p) for p in (ingest.tls.cert, ingest.tls.key, ingest.users_file) if p]
    if stage == "signer":
        signer = load_signer_config(config)
        return [str(signer.keys_dir), str(signer.secret_file)]
    if stage == "bouncer":
        bouncer = load_bouncer_config(config)
        return [str(p) for p in (bouncer.secret_file, bouncer.admin_token_file) if p]
    if stage == "reputation":  # the bounce rule table it classifies with, when a file
        rules = load_reputation_config(config).rule_table_path(config.core.bouncer)
        return [str(rules)] if rules else []
    if stage == "store":  # the database's DSN (a Secret) and the query API's admin token
        store = load_store(config)
        return [str(p) for p in (store.url_file, store.admin_token_file) if p]
    return []


def _deliverer(doc: Manifest, stage: str, config: Config) -> Iterable[str]:
    """The deliverer's section as its pods load it: ingest, signer, bouncer and reputation
    are loaded by ``_ports`` and ``_files`` already, and a refused section crash-loops."""
    if stage != "deliverer":
        return
    try:
        load_deliverer(config)
    except ConfigError as exc:
        yield f"{ref(doc)}: {exc.key}: {exc.problem}"


def _grace(doc: Manifest, drain: float) -> Iterable[str]:
    spec = doc["spec"]["template"]["spec"]
    grace = spec.get("terminationGracePeriodSeconds", 30)
    pre_stop = _container(doc).get("lifecycle", {}).get("preStop", {})
    command = pre_stop.get("exec", {}).get("command", [])
    pause = float(command[1]) if len(command) == 2 and command[0] == "sleep" else 0.0
    pause += float(pre_stop.get("sleep", {}).get("seconds", 0))
    if grace < pause + drain:
        yield (
            f"{ref(doc)}: terminationGracePeriodSeconds {grace} < preStop {pause:g}s + "
            f"runtime.drain_timeout {drain:g}s: in-flight work would be killed"
        )

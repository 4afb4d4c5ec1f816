"""deploy/k8s/components/dane: a validating unbound in the deliverer's pod, DANE pointed at it.

Read from the rendered overlays (the deliverer's config as its pods load it, with their
environment), and the rendered unbound.conf run by the real unbound on 127.0.0.1."""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from common import Rendered
from pods import selects
from postline_config import load_rendered_config

from services.deliverer.config import load as load_deliverer
from tests.deploy.conftest import find

DELIVERER = "postline-deliverer"
UNBOUND_CONF = "/etc/unbound/unbound.conf"


def _with_dane(rendered: list[Rendered]) -> list[Rendered]:
    found = [item for item in rendered if _sidecar(item) is not None]
    if not found:
        pytest.fail("no overlay includes the dane component")
    return found


def _pod(docs: Rendered) -> dict[str, Any]:
    spec: dict[str, Any] = find(docs, "Deployment", DELIVERER)["spec"]["template"]["spec"]
    return spec


def _sidecar(docs: Rendered) -> dict[str, Any] | None:
    for container in _pod(docs).get("initContainers", []):
        if container["name"] == "unbound":
            return container  # type: ignore[no-any-return]
    return None


def _unbound_conf(docs: Rendered) -> str:
    """The rendered unbound.conf the sidecar mounts at /etc/unbound/unbound.conf."""
    sidecar = _sidecar(docs)
    assert sidecar is not None
    mount = next(m for m in sidecar["volumeMounts"] if m["mountPath"] == UNBOUND_CONF)
    volume = next(v for v in _pod(docs)["volumes"] if v["name"] == mount["name"])
    config_map = find(docs, "ConfigMap", volume["configMap"]["name"])
    return str(config_map["data"][mount["subPath"]])


def _settings(conf: str, name: str) -> list[str]:
    return [
        value.strip().strip('"')
        for key, value in re.findall(r"^\s*([a-z0-9-]+):\s*(.*?)\s*$", conf, re.MULTILINE)
        if key == name
    ]


def test_deliverer_asks_only_the_sidecar_with_dane_on(rendered: list[Rendered]) -> None:
    for docs in _with_dane(rendered):
        deployment = find(docs, "Deployment", DELIVERER)
        deliverer = load_deliverer(load_rendered_config(docs, deployment))
        assert deliverer.dane.enabled, docs.overlay
        interfaces = {i.replace("@", ":") for i in _settings(_unbound_conf(docs), "interface")}
        assert interfaces == {"127.0.0.1:5353"}, docs.overlay
        assert set(deliverer.nameservers) == interfaces, docs.overlay


def test_sidecar_runs_our_image_unprivileged(rendered: list[Rendered]) -> None:
    for docs in _with_dane(rendered):
        pod = _pod(docs)
        sidecar = _sidecar(docs)
        assert sidecar is not None
        # The deliverer's image (the overlay's images: tag applies to both), no third party's.
        assert sidecar["image"] == pod["containers"][0]["image"], docs.overlay
        assert sidecar["command"] + sidecar["args"] == [
            "/usr/sbin/unbound",
            "-d",
            "-c",
            UNBOUND_CONF,
        ]
        assert sidecar["restartPolicy"] == "Always"  # a native sidecar: up before the deliverer
        assert sidecar["securityContext"] == pod["containers"][0]["securityContext"]
        assert pod["securityContext"]["runAsUser"] == 10001
        assert {"requests", "limits"} <= set(sidecar["resources"])


def test_only_the_sidecar_mounts_the_control_socket(rendered: list[Rendered]) -> None:
    for docs in _with_dane(rendered):
        conf = _unbound_conf(docs)
        (socket_path,) = _settings(conf, "control-interface")
        assert socket_path.startswith("/"), "a unix socket, not a TCP control port"
        holders = [
            container["name"]
            for container in [*_pod(docs)["containers"], *_pod(docs)["initContainers"]]
            for mount in container.get("volumeMounts", [])
            if Path(socket_path).is_relative_to(mount["mountPath"])
        ]
        assert holders == ["unbound"], docs.overlay


def test_unbound_validates_from_the_static_root_anchor(rendered: list[Rendered]) -> None:
    for docs in _with_dane(rendered):
        conf = _unbound_conf(docs)
        assert _settings(conf, "module-config") == ["validator iterator"]
        assert _settings(conf, "trust-anchor-file") == ["/usr/share/dns/root.key"]
        assert _settings(conf, "auto-trust-anchor-file") == []
        assert _settings(conf, "forward-zone") == []  # iterates itself, trusts no forwarder
        assert "127.0.0.0/8 allow" in _settings(conf, "access-control")
        assert [a for a in _settings(conf, "access-control") if a.endswith(" allow")] == [
            "127.0.0.0/8 allow"
        ]


def test_deliverer_may_reach_name_servers_on_the_internet(rendered: list[Rendered]) -> None:
    for docs in _with_dane(rendered):
        labels = find(docs, "Deployment", DELIVERER)["spec"]["template"]["metadata"]["labels"]
        rules = [
            rule
            for policy in docs.of_kind("NetworkPolicy")
            if selects(policy["spec"].get("podSelector"), labels)
            for rule in policy["spec"].get("egress", [])
        ]
        if not rules:
            continue  # no network-policies component in this overlay
        for protocol in ("UDP", "TCP"):
            assert any(
                {"port": 53, "protocol": protocol} in rule.get("ports", [])
                and {"ipBlock": {"cidr": "0.0.0.0/0"}} in rule.get("to", [])
                for rule in rules
            ), (docs.overlay, protocol)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _query_localhost(port: int) -> int:
    """The rcode of ``localhost. A`` (unbound's built-in local zone: nothing leaves the host)."""
    header = struct.pack("!HHHHHH", 0x5053, 0x0100, 1, 0, 0, 0)  # id, RD, one question
    query = header + b"\x09localhost\x00\x00\x01\x00\x01"  # localhost. A IN
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(60)
        sock.sendto(query, ("127.0.0.1", port))
        reply = sock.recv(512)
    assert reply[:2] == b"\x50\x53"
    return reply[3] & 0x0F


def test_rendered_config_runs_and_the_probe_sees_it(
    rendered: list[Rendered], unbound_binary: str, tmp_path: Path
) -> None:
    """The real unbound starts from the rendered unbound.conf and the probes' command says so.

    Only the port (5353 may be taken here) and the control socket's directory move."""
    docs = _with_dane(rendered)[0]
    sidecar = _sidecar(docs)
    assert sidecar is not None
    port = _free_port()
    conf = tmp_path / "unbound.conf"
    conf.write_text(
        _unbound_conf(docs)
        .replace("127.0.0.1@5353", f"127.0.0.1@{port}")
        .replace("/run/unbound/", f"{tmp_path}/")
    )
    command = sidecar["startupProbe"]["exec"]["command"]
    assert sidecar["livenessProbe"]["exec"]["command"] == command
    probe = [str(conf) if arg == UNBOUND_CONF else arg for arg in command]
    probe[0] = str(Path(unbound_binary).with_name("unbound-control"))
    log = (tmp_path / "unbound.log").open("w")
    process = subprocess.Popen([unbound_binary, "-d", "-c", str(conf)], stderr=log)
    try:
        # Until the probe passes or unbound exits (pytest's timeout bounds a hang): no
        # deadline of our own, so a slow machine cannot fail it.
        status = 1
        while process.poll() is None:
            status = subprocess.run(probe, capture_output=True, check=False).returncode
            if status == 0:
                break
            time.sleep(0.1)
        assert status == 0, (tmp_path / "unbound.log").read_text()
        assert _query_localhost(port) == 0
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
    assert subprocess.run(probe, capture_output=True, check=False).returncode != 0

"""deploy/k8s/components/scanning: rspamd reachable only from ingest, and offline.

Read from the rendered overlays, with the same label-selector logic the cross-reference
checks use (deploy/check/pods.py)."""

from __future__ import annotations

from typing import Any

import pytest
from common import Rendered
from pods import all_pods, selects

from tests.deploy.conftest import find

RSPAMD = {"app.kubernetes.io/name": "rspamd"}


def _with_scanning(rendered: list[Rendered]) -> list[Rendered]:
    found = [item for item in rendered if item.named("Deployment", "rspamd") is not None]
    if not found:
        pytest.fail("no overlay includes the scanning component")
    return found


def _policies_for(docs: Rendered, labels: dict[str, str]) -> list[dict[str, Any]]:
    return [
        policy
        for policy in docs.of_kind("NetworkPolicy")
        if selects(policy["spec"].get("podSelector"), labels)
    ]


def _rspamd_labels(docs: Rendered) -> dict[str, str]:
    labels: dict[str, str] = find(docs, "Deployment", "rspamd")["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


def test_only_ingest_pods_may_connect_to_rspamd(rendered: list[Rendered]) -> None:
    for docs in _with_scanning(rendered):
        labels = _rspamd_labels(docs)
        policies = _policies_for(docs, labels)
        assert any("Ingress" in p["spec"]["policyTypes"] for p in policies), docs.overlay
        sources = [
            peer
            for policy in policies
            for rule in policy["spec"].get("ingress", [])
            for peer in rule.get("from", [{}])  # no `from`: every source
        ]
        allowed = {
            pod.owner
            for peer in sources
            for pod in all_pods(docs)
            if "namespaceSelector" not in peer and selects(peer.get("podSelector"), pod.labels)
        }
        assert allowed == {"Deployment/postline-ingest"}, (docs.overlay, sources)
        assert all(set(peer) == {"podSelector"} for peer in sources), (docs.overlay, sources)


def test_rspamd_has_no_egress(rendered: list[Rendered]) -> None:
    for docs in _with_scanning(rendered):
        policies = _policies_for(docs, _rspamd_labels(docs))
        assert any("Egress" in p["spec"]["policyTypes"] for p in policies), docs.overlay
        assert [p["metadata"]["name"] for p in policies if p["spec"].get("egress")] == []


def test_ingest_may_reach_the_rspamd_service(rendered: list[Rendered]) -> None:
    for docs in _with_scanning(rendered):
        port = find(docs, "Service", "rspamd")["spec"]["ports"][0]
        assert port["port"] == 11333
        ingest = find(docs, "Deployment", "postline-ingest")["spec"]["template"]["metadata"]
        egress = [
            rule
            for policy in _policies_for(docs, ingest["labels"])
            if "Egress" in policy["spec"]["policyTypes"]
            for rule in policy["spec"].get("egress", [])
        ]
        assert any(
            any(selects(peer.get("podSelector"), RSPAMD) for peer in rule.get("to", []))
            and {"port": 11333, "protocol": "TCP"} in rule.get("ports", [])
            for rule in egress
        ), docs.overlay


def test_ingest_config_points_at_the_rspamd_service(rendered: list[Rendered]) -> None:
    for docs in _with_scanning(rendered):
        container = find(docs, "Deployment", "postline-ingest")["spec"]["template"]["spec"][
            "containers"
        ][0]
        env = {item["name"]: item.get("value") for item in container.get("env", [])}
        service = find(docs, "Service", "rspamd")
        port = service["spec"]["ports"][0]["port"]
        expected = f"http://{service['metadata']['name']}:{port}"
        assert env.get("POSTLINE__INGEST__SCANNING__URL") == expected, docs.overlay

"""The pods a rendered overlay will run, with their labels and named ports.

Deployments give their pod templates; Strimzi's Kafka resource gives the broker and Kafka
Exporter pods the operator creates (their labels are Strimzi's documented ones). Owns this
model only; the cross-reference checks use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from common import Manifest, Rendered, ref


@dataclass(frozen=True)
class Pod:
    """A pod template: who creates it, its labels and its containers' named ports."""

    owner: str
    labels: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Does a LabelSelector (matchLabels and matchExpressions) select these labels?"""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    return all(_expression(expr, labels) for expr in selector.get("matchExpressions") or [])


def _expression(expr: dict[str, Any], labels: dict[str, str]) -> bool:
    key, op, values = expr["key"], expr["operator"], expr.get("values") or []
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    return key not in labels  # DoesNotExist


def deployment_pod(doc: Manifest) -> Pod:
    """The pod of a Deployment's template."""
    template = doc["spec"]["template"]
    ports = {
        port["name"]: port["containerPort"]
        for container in template["spec"].get("containers", [])
        for port in container.get("ports", [])
        if "name" in port
    }
    return Pod(ref(doc), dict(template["metadata"].get("labels") or {}), ports)


def strimzi_pods(kafka: Manifest) -> list[Pod]:
    """The broker (and Kafka Exporter) pods Strimzi creates for a Kafka resource."""
    name = kafka["metadata"]["name"]
    base = {"strimzi.io/cluster": name, "strimzi.io/kind": "Kafka"}
    listeners = kafka["spec"]["kafka"].get("listeners", [])
    broker_ports = {f"tcp-{item['name']}"[:15]: item["port"] for item in listeners}
    pods = [Pod(ref(kafka), {**base, "strimzi.io/name": f"{name}-kafka"}, broker_ports)]
    if "kafkaExporter" in kafka["spec"]:
        exporter = {**base, "strimzi.io/name": f"{name}-kafka-exporter"}
        pods.append(Pod(f"{ref(kafka)} (Kafka Exporter)", exporter, {"tcp-prometheus": 9404}))
    return pods


def all_pods(rendered: Rendered) -> list[Pod]:
    """Every pod the overlay runs."""
    pods = [deployment_pod(doc) for doc in rendered.of_kind("Deployment")]
    for kafka in rendered.of_kind("Kafka"):
        pods += strimzi_pods(kafka)
    return pods

"""Cross-reference checks between Kubernetes objects that no schema can express.

- Deployments select their own pod template; Services, PDBs, NetworkPolicies and PodMonitors
  select at least one pod, and every named port they use exists on the pods they select.
- Every Deployment is scaled by at most one autoscaler (an HPA or a KEDA ScaledObject, never
  both) and autoscalers point at existing Deployments.
- No Secret is rendered (secrets are created by the operator of the cluster, never committed)
  and every Secret a pod mounts is listed in docs/deployment.md.
- Dashboards are ConfigMaps labelled ``grafana_dashboard: "1"``; PodMonitors set ``jobLabel``.
Owns these checks; Kafka and config consistency are in ``crossref_kafka.py``.
"""

from __future__ import annotations

from collections.abc import Iterable

from common import REPO, Manifest, Rendered, ref
from pods import Pod, all_pods, selects

DOCS = REPO / "docs/deployment.md"


def check(rendered: Rendered) -> list[str]:
    """Every problem in one overlay, each prefixed with the overlay's name."""
    pods = all_pods(rendered)
    problems = [
        *_deployments(rendered),
        *_selectors(rendered, pods),
        *_autoscalers(rendered),
        *_secrets(rendered),
        *_monitoring(rendered, pods),
    ]
    return [f"{rendered.overlay}: {problem}" for problem in problems]


def _deployments(rendered: Rendered) -> Iterable[str]:
    for doc in rendered.of_kind("Deployment"):
        labels = doc["spec"]["template"]["metadata"].get("labels") or {}
        if not selects(doc["spec"].get("selector"), labels):
            yield f"{ref(doc)}: spec.selector does not match its pod template labels {labels}"
        for key in ("app.kubernetes.io/part-of", "app.kubernetes.io/name"):
            if key not in labels:
                yield f"{ref(doc)}: pod template lacks label {key} (kustomize labels reach it?)"


def _selected(selector: dict[str, object] | None, pods: list[Pod]) -> list[Pod]:
    return [pod for pod in pods if selects(selector, pod.labels)]  # type: ignore[arg-type]


def _selectors(rendered: Rendered, pods: list[Pod]) -> Iterable[str]:
    for svc in rendered.of_kind("Service"):
        chosen = _selected({"matchLabels": svc["spec"].get("selector")}, pods)
        if not chosen:
            yield f"{ref(svc)}: selector {svc['spec'].get('selector')} matches no pod"
        for port in svc["spec"].get("ports", []):
            yield from _named_port(svc, port.get("targetPort"), chosen)
    for pdb in rendered.of_kind("PodDisruptionBudget"):
        if len(_selected(pdb["spec"].get("selector"), pods)) != 1:
            yield f"{ref(pdb)}: selector must match exactly one workload's pods"
    for policy in rendered.of_kind("NetworkPolicy"):
        chosen = _selected(policy["spec"].get("podSelector"), pods)
        if not chosen:
            yield f"{ref(policy)}: podSelector matches no pod"
        for rule in policy["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                yield from _named_port(policy, port.get("port"), chosen)


def _named_port(doc: Manifest, port: object, pods: list[Pod]) -> Iterable[str]:
    if isinstance(port, str):
        for pod in pods:
            if port not in pod.ports:
                yield f"{ref(doc)}: port {port!r} is not a named port of {pod.owner}"


def _autoscalers(rendered: Rendered) -> Iterable[str]:
    deployments = {doc["metadata"]["name"] for doc in rendered.of_kind("Deployment")}
    scaled: dict[str, str] = {}
    targets = [
        (hpa, hpa["spec"]["scaleTargetRef"]) for hpa in rendered.of_kind("HorizontalPodAutoscaler")
    ]
    targets += [(so, so["spec"]["scaleTargetRef"]) for so in rendered.of_kind("ScaledObject")]
    for scaler, target in targets:
        name = target.get("name")
        if target.get("kind", "Deployment") != "Deployment" or name not in deployments:
            yield f"{ref(scaler)}: scaleTargetRef {name!r} is not a Deployment of this overlay"
        elif name in scaled:
            yield f"Deployment/{name}: scaled by both {scaled[name]} and {ref(scaler)}"
        else:
            scaled[name] = ref(scaler)


def _secrets(rendered: Rendered) -> Iterable[str]:
    for doc in rendered.of_kind("Secret"):
        yield f"{ref(doc)}: Secrets must not be committed; document it in {DOCS.name} instead"
    documented = DOCS.read_text() if DOCS.exists() else ""
    for doc in rendered.of_kind("Deployment"):
        for volume in doc["spec"]["template"]["spec"].get("volumes", []):
            name = (volume.get("secret") or {}).get("secretName")
            if name and f"`{name}`" not in documented:
                yield f"{ref(doc)}: mounts Secret {name!r}, not listed in docs/deployment.md"


def _monitoring(rendered: Rendered, pods: list[Pod]) -> Iterable[str]:
    for monitor in rendered.of_kind("PodMonitor"):
        chosen = _selected(monitor["spec"].get("selector"), pods)
        job_label = monitor["spec"].get("jobLabel")
        if not chosen:
            yield f"{ref(monitor)}: selector matches no pod"
        if not job_label:
            yield f"{ref(monitor)}: no jobLabel (job names would be namespace/name)"
        for pod in chosen:
            if job_label and job_label not in pod.labels:
                yield f"{ref(monitor)}: jobLabel {job_label!r} is not a label of {pod.owner}"
        for endpoint in monitor["spec"].get("podMetricsEndpoints", []):
            yield from _named_port(monitor, endpoint.get("port"), chosen)
    for cm in rendered.of_kind("ConfigMap"):
        is_dashboard = any(key.endswith(".json") for key in cm.get("data", {}))
        if is_dashboard and cm["metadata"].get("labels", {}).get("grafana_dashboard") != "1":
            yield f'{ref(cm)}: dashboards need the label grafana_dashboard: "1"'

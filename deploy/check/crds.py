"""Validates rendered custom resources against the operators' CRD schemas (jsonschema).

The CRDs are not in this repository: they are read from a directory given on the command
line (default ``../shared/k8s-crds`` beside the repository). Each CRD file contributes the
``openAPIV3Schema`` of every served version, keyed by (apiVersion, kind). A custom resource of
an unknown group/version/kind is an error too: it would not apply. CEL rules
(``x-kubernetes-validations``) are not evaluated. Owns only this validation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml
from common import CheckError, Manifest, Rendered, ref

CORE_GROUPS = ("v1", "apps/", "policy/", "autoscaling/", "networking.k8s.io/", "rbac.")

Schemas = dict[tuple[str, str], dict[str, Any]]


def load_schemas(crd_dir: Path) -> Schemas:
    """(apiVersion, kind) -> schema for every served version of every CRD in ``crd_dir``."""
    if not crd_dir.is_dir():
        raise CheckError(
            f"CRD directory {crd_dir} does not exist: pass --crds PATH "
            "(the CRDs of Strimzi, KEDA and the Prometheus Operator; see ../shared/k8s-crds)"
        )
    schemas: Schemas = {}
    for path in sorted(crd_dir.glob("*.y*ml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served"):
                    schema = version["schema"]["openAPIV3Schema"]
                    schemas[(f"{group}/{version['name']}", kind)] = _strict(schema)
    if not schemas:
        raise CheckError(f"CRD directory {crd_dir} holds no CustomResourceDefinition")
    return schemas


def _strict(schema: Any) -> Any:
    """Kubernetes prunes unknown fields silently; here they are errors (a typo never applies)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        if "properties" in schema and "additionalProperties" not in schema and not preserve:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


def is_custom(doc: Manifest) -> bool:
    """True for resources that are not built into Kubernetes."""
    api = str(doc.get("apiVersion", ""))
    return not (api == "v1" or api.startswith(CORE_GROUPS))


def validate(rendered: Rendered, schemas: Schemas) -> list[str]:
    """Problems of every custom resource in one rendered overlay."""
    problems: list[str] = []
    for doc in filter(is_custom, rendered.docs):
        key = (str(doc.get("apiVersion")), str(doc.get("kind")))
        schema = schemas.get(key)
        if schema is None:
            served = sorted(api for api, kind in schemas if kind == key[1]) or ["none"]
            problems.append(
                f"{rendered.overlay}: {ref(doc)}: no CRD serves {key[0]} {key[1]} "
                f"(served: {', '.join(served)})"
            )
            continue
        body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
        validator = jsonschema.Draft7Validator(schema)
        for error in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
            where = ".".join(str(p) for p in error.absolute_path) or "(top)"
            problems.append(f"{rendered.overlay}: {ref(doc)}: {where}: {error.message}")
    return problems

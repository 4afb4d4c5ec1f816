"""The Postline configuration a rendered overlay gives each pod, loaded by Postline's own code.

Takes the ``postline.toml`` of the rendered ConfigMap that the pods mount and the
``POSTLINE__`` variables of a Deployment's container, and loads them with
:func:`shared.config.load_config` (strict: unknown keys fail here as they would in the pod).
Also finds where each file the config names is mounted. Owns only this loading.
"""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath

from common import Manifest, Rendered, ref

from shared.config import Config, load_config

CONFIG_KEY = "postline.toml"


def config_text(rendered: Rendered) -> str:
    """The ``postline.toml`` text of the overlay's config ConfigMap."""
    for cm in rendered.of_kind("ConfigMap"):
        if CONFIG_KEY in cm.get("data", {}):
            return str(cm["data"][CONFIG_KEY])
    raise ValueError(f"{rendered.overlay}: no ConfigMap holds {CONFIG_KEY}")


def container_env(deployment: Manifest | None) -> dict[str, str]:
    """The literal ``POSTLINE__`` variables of a Deployment's first container."""
    if deployment is None:
        return {}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {
        item["name"]: str(item["value"])
        for item in container.get("env", [])
        if item["name"].startswith("POSTLINE__") and "value" in item
    }


def load_rendered_config(rendered: Rendered, deployment: Manifest | None = None) -> Config:
    """The config one Deployment's pods see (the file plus their environment)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / CONFIG_KEY
        path.write_text(config_text(rendered))
        return load_config(path, environ=container_env(deployment))


def mounted(deployment: Manifest, path: str) -> bool:
    """Is ``path`` inside one of the first container's volume mounts?"""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    target = PurePosixPath(path)
    for mount in container.get("volumeMounts", []):
        root = PurePosixPath(mount["mountPath"])
        if target == root or root in target.parents:
            return True
    return False


def unmounted(deployment: Manifest, paths: list[str]) -> list[str]:
    """Problems for each configured path the Deployment does not mount."""
    return [
        f"{ref(deployment)}: {p} is configured but not mounted"
        for p in paths
        if p and not mounted(deployment, p)
    ]

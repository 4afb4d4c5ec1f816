"""deploy/check/crds.py: custom resources against the operators' CRD schemas."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import crds
import pytest
from common import CheckError, Rendered

from tests.deploy.conftest import find


@pytest.fixture(scope="module")
def schemas(crd_dir: Path) -> crds.Schemas:
    return crds.load_schemas(crd_dir)


def test_every_overlay_passes(rendered: list[Rendered], schemas: crds.Schemas) -> None:
    for item in rendered:
        assert crds.validate(item, schemas) == []


def test_served_versions_are_the_ones_used(schemas: crds.Schemas) -> None:
    assert ("kafka.strimzi.io/v1", "KafkaTopic") in schemas
    assert ("keda.sh/v1alpha1", "ScaledObject") in schemas
    assert ("monitoring.coreos.com/v1", "PrometheusRule") in schemas


def test_a_wrong_type_names_the_field(
    overlay: Callable[[str], Rendered], schemas: crds.Schemas
) -> None:
    dev = overlay("dev")
    find(dev, "KafkaTopic", "postline-outbound")["spec"]["partitions"] = "twelve"
    problems = crds.validate(dev, schemas)
    assert len(problems) == 1
    assert "KafkaTopic/postline-outbound: spec.partitions: 'twelve' is not of type" in problems[0]


def test_an_unknown_field_is_an_error(
    overlay: Callable[[str], Rendered], schemas: crds.Schemas
) -> None:
    dev = overlay("dev")
    find(dev, "ScaledObject", "postline-signer")["spec"]["maxReplicas"] = 3
    problems = crds.validate(dev, schemas)
    assert any("ScaledObject/postline-signer" in p and "'maxReplicas'" in p for p in problems)


def test_a_version_no_crd_serves(overlay: Callable[[str], Rendered], schemas: crds.Schemas) -> None:
    dev = overlay("dev")
    find(dev, "Kafka", "postline")["apiVersion"] = "kafka.strimzi.io/v1beta2"
    problems = crds.validate(dev, schemas)
    assert problems == [
        "dev: Kafka/postline: no CRD serves kafka.strimzi.io/v1beta2 Kafka "
        "(served: kafka.strimzi.io/v1)"
    ]


def test_keda_metadata_must_be_strings(
    overlay: Callable[[str], Rendered], schemas: crds.Schemas
) -> None:
    dev = overlay("dev")
    find(dev, "ScaledObject", "postline-bouncer")["spec"]["triggers"][0]["metadata"][
        "lagThreshold"
    ] = 1000
    problems = crds.validate(dev, schemas)
    assert any(
        "triggers.0.metadata.lagThreshold: 1000 is not of type 'string'" in p for p in problems
    )


def test_a_missing_crd_directory_says_so(tmp_path: Path) -> None:
    with pytest.raises(CheckError, match="does not exist: pass --crds PATH"):
        crds.load_schemas(tmp_path / "nowhere")


def test_a_directory_without_crds_says_so(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("kind: ConfigMap\n")
    with pytest.raises(CheckError, match="holds no CustomResourceDefinition"):
        crds.load_schemas(tmp_path)

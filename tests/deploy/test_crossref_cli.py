"""deploy/check/crossref_cli.py: every container's args through the real ``postline`` parser."""

from __future__ import annotations

from collections.abc import Callable

import crossref_cli
import crossref_config
import pytest
from common import Rendered

from tests.deploy.conftest import find

Overlay = Callable[[str], Rendered]


def container(docs: Rendered, deployment: str) -> dict[str, object]:
    return find(docs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def test_every_overlay_parses(rendered: list[Rendered]) -> None:
    for item in rendered:
        assert crossref_cli.check(item) == []
        assert dict(crossref_cli.postline_invocations(find(item, "Deployment", "postline-ingest")))


def test_the_deployments_form_is_what_the_manifests_use(rendered: list[Rendered]) -> None:
    # Issue 11: `postline ingest --config F` crash-looped every pod; it must keep parsing.
    for item in rendered:
        for stage in ("ingest", "signer", "deliverer", "bouncer"):
            args = container(item, f"postline-{stage}")["args"]
            assert args == [stage, "--config", "/etc/postline/postline.toml"]


def test_an_unknown_option_fails_naming_overlay_deployment_and_container(
    overlay: Overlay,
) -> None:
    prod = overlay("prod")
    args = container(prod, "postline-signer")["args"]
    assert isinstance(args, list)
    args.append("--confg=/etc/postline/other.toml")
    assert crossref_cli.check(prod) == [
        "prod: Deployment/postline-signer container 'signer': postline signer --config "
        "/etc/postline/postline.toml --confg=/etc/postline/other.toml: unrecognized arguments: "
        "--confg=/etc/postline/other.toml"
    ]


@pytest.mark.parametrize(
    ("command", "args", "error"),
    [
        (None, ["ingest", "--config"], "argument --config: expected one argument"),
        (None, ["ingestt", "--config", "/etc/postline/postline.toml"], "invalid choice"),
        (["/usr/local/bin/postline", "--bogus"], ["ingest"], "unrecognized arguments: --bogus"),
        (None, [], "no command given"),
    ],
)
def test_broken_command_lines_fail(
    overlay: Overlay, command: list[str] | None, args: list[str], error: str
) -> None:
    dev = overlay("dev")
    target = container(dev, "postline-ingest")
    target["args"] = args
    if command is not None:
        target["command"] = command
    found = crossref_cli.check(dev)
    assert len(found) == 1
    assert found[0].startswith("dev: Deployment/postline-ingest container 'ingest': postline ")
    assert error in found[0]


def test_other_programs_and_images_are_not_parsed(overlay: Overlay) -> None:
    dev = overlay("dev")
    spec = find(dev, "Deployment", "postline-ingest")["spec"]["template"]["spec"]
    spec["containers"][0]["command"] = ["sh", "-c", "exec postline ingest"]
    spec["containers"].append({"name": "proxy", "image": "envoyproxy/envoy:v1", "args": ["-x"]})
    spec["initContainers"] = [
        {"name": "migrate", "image": "registry.example.com/postline@sha256:ab", "args": ["nope"]}
    ]
    found = crossref_cli.check(dev)
    assert len(found) == 1
    assert found[0].startswith("dev: Deployment/postline-ingest container 'migrate': postline nope")
    assert "invalid choice: 'nope'" in found[0]


def test_config_before_the_stage_is_accepted_too(overlay: Overlay) -> None:
    dev = overlay("dev")
    container(dev, "postline-deliverer")["args"] = [
        "--config",
        "/etc/postline/postline.toml",
        "deliverer",
    ]
    assert crossref_cli.check(dev) == []
    assert crossref_config.check(dev) == []


def test_the_wrong_stage_is_named(overlay: Overlay) -> None:
    dev = overlay("dev")
    container(dev, "postline-deliverer")["args"] = [
        "signer",
        "--config",
        "/etc/postline/postline.toml",
    ]
    assert (
        "dev: Deployment/postline-deliverer: args ['signer', '--config', "
        "'/etc/postline/postline.toml'] run 'signer', not the stage 'deliverer'"
    ) in crossref_config.check(dev)

"""Every Postline container's command line, parsed by the real ``postline`` parser.

A pod whose args the CLI refuses crash-loops (issue 11: the Deployments ran ``postline
ingest --config FILE`` when only ``postline --config FILE ingest`` parsed). This check builds
the parser the console script builds (``shared.cli.build_parser`` with the installed stages)
and parses each container's rendered ``command`` + ``args`` with it, so a manifest and the CLI
can never disagree unseen. A container runs ``postline`` when its image is the ``postline``
image (the Dockerfile's ENTRYPOINT) and it does not replace the entrypoint with another
program. Owns this check only; what the args must say (the stage, a mounted ``--config``) is
``crossref_config``'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePosixPath

from common import Manifest, Rendered, ref

from shared.cli import build_parser, discover_stages
from shared.cli.parser import parse_error

ENTRYPOINT = "postline"


def check(rendered: Rendered) -> list[str]:
    """A problem for each container whose command line ``postline`` would refuse."""
    specs = discover_stages()
    problems = []
    for doc in rendered.of_kind("Deployment"):
        for name, argv in postline_invocations(doc):
            error = parse_error(build_parser(specs), argv)
            if error is not None:
                problems.append(
                    f"{rendered.overlay}: {ref(doc)} container {name!r}: "
                    f"postline {' '.join(argv)}: {error}"
                )
    return problems


def postline_invocations(doc: Manifest) -> Iterator[tuple[str, list[str]]]:
    """``(container name, argv after 'postline')`` for each container that runs Postline."""
    spec = doc["spec"]["template"]["spec"]
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        if not _is_postline_image(str(container.get("image", ""))):
            continue
        command = [str(a) for a in container.get("command") or []]
        args = [str(a) for a in container.get("args") or []]
        if not command:
            yield container["name"], args
        elif PurePosixPath(command[0]).name == ENTRYPOINT:
            yield container["name"], command[1:] + args


def _is_postline_image(image: str) -> bool:
    """``postline:0.1.0``, ``registry.example.com/team/postline@sha256:...`` and the like."""
    repository = image.split("@", 1)[0]
    last = repository.rsplit("/", 1)[-1]
    return last.split(":", 1)[0] == ENTRYPOINT

"""One Prometheus exposition out of several processes' expositions.

The HTTP port of a ``postline run`` spread over processes serves its own metrics and those of
its stage processes (``shared.runtime.children``) in one scrape. Families of the same name
from several processes become one family (the text format allows each name once), and every
sample gains a ``process`` label naming where it came from, so two processes' samples never
collide (both have ``postline_stage_ready`` and the bus's metrics). Parsing and writing are
prometheus_client's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

#: The label that says which process a sample came from.
PROCESS_LABEL = "process"


class _Families:
    """What ``generate_latest`` needs of a registry: ``collect()``."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def merge_expositions(parts: Sequence[tuple[str, bytes]]) -> bytes:
    """The text exposition of every family in ``parts`` (process name, exposition text),
    each sample labelled ``process="<name>"``; help and type come from the first process
    that has the family."""
    families: dict[str, Metric] = {}
    for process, text in parts:
        for family in text_string_to_metric_families(text.decode("utf-8", "replace")):
            merged = families.get(family.name)
            if merged is None:
                merged = Metric(family.name, family.documentation, family.type, family.unit)
                families[family.name] = merged
            merged.samples.extend(
                sample._replace(labels={**sample.labels, PROCESS_LABEL: process})
                for sample in family.samples
            )
    return generate_latest(_Families(list(families.values())))

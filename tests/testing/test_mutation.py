"""The mutation operators: what is mutated, what is left alone, and how mutants are named."""

from __future__ import annotations

import textwrap

from testing.mutation.operators import mutants
from testing.mutation.runner import EQUIVALENT, KILLED, SURVIVED, ModuleResult

SOURCE = textwrap.dedent(
    '''
    """Module docstring, never mutated."""
    import logging

    log = logging.getLogger(__name__)
    LIMIT = 3


    def decide(code: int, permanent: bool) -> str:
        """Docstring, never mutated."""
        log.info("deciding %d", 5)
        if code >= 500 and permanent:
            return "bounce"
        return "defer"
    '''
)


def _by_name() -> dict[str, str]:
    return {m.name: m.description for m in mutants("pkg/mod.py", SOURCE)}


def test_every_operator_finds_its_site_and_names_it_by_function() -> None:
    assert _by_name() == {
        "<module>:constant:1": "3 -> 4",
        "decide:condition:1": "condition -> True",
        "decide:condition:2": "condition -> False",
        "decide:boolop:1": "and -> or",
        "decide:compare:1": ">= -> >",
        "decide:constant:1": "500 -> 501",
        "decide:return:1": "return x -> return None",
        "decide:return:2": "return x -> return None",
    }


def test_a_mutant_changes_behaviour_and_nothing_else() -> None:
    found = {m.name: m for m in mutants("pkg/mod.py", SOURCE)}
    namespace: dict[str, object] = {}
    exec(compile(found["decide:compare:1"].source, "mod.py", "exec"), namespace)
    decide = namespace["decide"]
    assert callable(decide)
    assert decide(500, True) == "defer"  # ">=" became ">"
    assert decide(501, True) == "bounce"
    assert found["decide:compare:1"].line == 12
    assert found["decide:compare:1"].ident == "pkg/mod.py::decide:compare:1"


def test_names_do_not_depend_on_lines_above() -> None:
    shifted = "\n\n# a comment and blank lines above\n" + SOURCE
    assert {m.name for m in mutants("pkg/mod.py", shifted)} == set(_by_name())


def test_score_leaves_equivalents_out() -> None:
    result = ModuleResult("pkg/mod.py")
    result.results = {"a": KILLED, "b": KILLED, "c": SURVIVED, "d": EQUIVALENT}
    assert result.score == 2 / 3
    assert ModuleResult("empty").score == 1.0

"""``postline config reference``: every config key, its type, default and meaning, as Markdown.

``docs/configuration.md`` is this command's output. The meaning of a key is the comment the
source gives its field: the ``#:`` lines above it and the ``#`` comment on its line (read
with ``ast`` and ``tokenize``, so the struct stays the one place a setting is described).
Stage sections come from ``StageSpec.config_type``, so this module never imports a stage.
"""

from __future__ import annotations

import ast
import inspect
import io
import textwrap
import tokenize
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import msgspec

from shared.config import ByteSize, CoreConfig, Duration, to_builtins
from shared.runtime.spec import StageSpec

INTRO = """# Configuration reference

Postline reads one TOML file: `postline --config FILE`, else `$POSTLINE_CONFIG`, else
`./postline.toml` when present, else the defaults below. `make run` uses
`deploy/local/postline.toml`. Unknown keys are errors, and every error names the file and
the key.

Any key can be overridden by an environment variable: `POSTLINE__` followed by the key path
in capitals with `__` between the parts, e.g. `POSTLINE__KAFKA__BOOTSTRAP=kafka:9092` sets
`kafka.bootstrap`. A value is read as a TOML literal when it is one (`10`, `true`,
`["a", "b"]`) and as a string otherwise.

Types: a *duration* is a string like `"30s"`, `"5m"`, `"2h"`, `"3d"` (or a number of
seconds); a *size* is a string like `"25MiB"`, `"512KiB"` (or a number of bytes); a *path* is
relative to the directory Postline is started in. `[]` in a key marks an array of tables
(`[[ingest.listeners]]`), `<name>` a table keyed by a name you choose.

This file is generated: `postline config reference > docs/configuration.md`.
"""


@dataclass(frozen=True)
class Row:
    """One documented key."""

    path: str
    type: str
    default: str
    meaning: str


def field_paths(struct: type, prefix: str) -> Iterator[str]:
    """Every key path of ``struct`` under ``prefix`` (nested tables included)."""
    for row in rows(struct, prefix):
        yield row.path


def rows(struct: type, prefix: str) -> Iterator[Row]:
    """One row per field of ``struct`` and, recursively, of the tables it holds."""
    docs = field_docs(struct)
    for info in msgspec.structs.fields(struct):
        path = f"{prefix}.{info.encode_name}"
        default = _default(info)
        nested, suffix = _nested(info.type)
        meaning = docs.get(info.name) or _description(info.type) or _summary(nested)
        yield Row(path, type_name(info.type), default, _markdown(meaning))
        if nested is not None:
            yield from rows(nested, path + suffix)


def _nested(tp: Any) -> tuple[type | None, str]:
    """The struct a field holds (directly, in a list or as dict values) and the path suffix."""
    tp = _strip(tp)
    if _is_struct(tp):
        return tp, ""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, tuple) and args and _is_struct(_strip(args[0])):
        return _strip(args[0]), "[]"
    if origin is dict and len(args) == 2 and _is_struct(_strip(args[1])):
        return _strip(args[1]), ".<name>"
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            nested, suffix = _nested(arg)
            if nested is not None:
                return nested, suffix
    return None, ""


def _markdown(text: str) -> str:
    """reStructuredText literals as Markdown code, first letter capitalised."""
    text = text.replace("``", "`")
    return text[:1].upper() + text[1:]


def _description(tp: Any) -> str:
    """A ``msgspec.Meta(description=...)`` on the field's type (``shared.config.Port``)."""
    if typing.get_origin(tp) is not typing.Annotated:
        return ""
    metas = [m for m in typing.get_args(tp)[1:] if isinstance(m, msgspec.Meta)]
    return next((m.description for m in metas if m.description), "")


def _summary(struct: type | None) -> str:
    """The first line of a nested table's docstring."""
    doc = inspect.getdoc(struct) if struct is not None else None
    return doc.splitlines()[0] if doc else ""


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def _strip(tp: Any) -> Any:
    return typing.get_args(tp)[0] if typing.get_origin(tp) is typing.Annotated else tp


def type_name(tp: Any) -> str:
    """A readable type: ``integer (1 to 64)``, ``"json" | "text"``, ``list of string``."""
    bounds = ""
    if typing.get_origin(tp) is typing.Annotated:
        tp, *metas = typing.get_args(tp)
        bounds = _bounds([m for m in metas if isinstance(m, msgspec.Meta)])
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        name = " \\| ".join(f'"{a}"' if isinstance(a, str) else str(a) for a in args)
    elif origin in (typing.Union, types.UnionType):
        name = " or ".join(type_name(a) for a in args if a is not type(None))
        if type(None) in args:
            name += " (optional)"
    elif origin in (list, tuple):
        name = f"list of {type_name(args[0])}"
    elif origin is dict:
        name = f"table of {type_name(args[1])}"
    else:
        fallback = "table" if _is_struct(tp) else str(getattr(tp, "__name__", tp))
        name = _SIMPLE.get(tp) or fallback
    return f"{name} {bounds}".strip()


_SIMPLE: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    Duration: "duration",
    ByteSize: "size",
    Path: "path",
}


def _bounds(metas: list[msgspec.Meta]) -> str:
    parts = []
    for meta in metas:
        for attr, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(meta, attr)
            if value is not None:
                parts.append(f"{word} {value:,}".replace(",", "_"))
        for attr, word in (("min_length", "length >="), ("max_length", "length <=")):
            value = getattr(meta, attr)
            if value is not None:
                parts.append(f"{word} {value}")
        if meta.pattern is not None:
            parts.append(f"matching `{meta.pattern}`")
    return f"({', '.join(parts)})" if parts else ""


def _default(info: msgspec.structs.FieldInfo) -> str:
    if info.default is not msgspec.NODEFAULT:
        value = info.default
    elif info.default_factory is not msgspec.NODEFAULT:
        value = info.default_factory()
    else:
        return "(required)"
    if _is_struct(type(value)):
        return "(table)"
    if isinstance(value, Duration):
        return f"`{_duration(float(value))}`"
    if isinstance(value, ByteSize):
        return f"`{_size(int(value))}`"
    rendered = msgspec.json.encode(to_builtins(value)).decode()
    return f"`{rendered}`".replace("|", "\\|")


def _size(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f'"{size // factor}{unit}"'
    return str(size)


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f'"{int(seconds // size)}{unit}"'
    return f'"{seconds:g}s"' if seconds >= 1 or seconds == 0 else f'"{seconds * 1000:g}ms"'


@cache
def field_docs(struct: type) -> dict[str, str]:
    """Field name -> its comments (``#:`` lines above, then the comment on its line)."""
    try:
        source = textwrap.dedent(inspect.getsource(struct))
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string
    lines = source.splitlines()
    docs: dict[str, str] = {}
    (node,) = ast.parse(source).body
    assert isinstance(node, ast.ClassDef)
    for stmt in node.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            above: list[str] = []
            line = stmt.lineno - 1
            while line >= 1 and lines[line - 1].strip().startswith("#:"):
                above.insert(0, lines[line - 1].strip()[2:].strip())
                line -= 1
            inline = [
                comments[n][1:].strip()
                for n in range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1)
                if n in comments and not lines[n - 1].strip().startswith("#")
            ]
            docs[stmt.target.id] = " ".join([*above, *inline]).replace("|", "\\|")
    return docs


def sections(specs: Sequence[StageSpec]) -> list[tuple[str, type, str]]:
    """(section name, struct, where it is defined) for the shared and the stage sections."""
    core = [
        (info.name, _strip(info.type), "shared/config.py")
        for info in msgspec.structs.fields(CoreConfig)
        if _is_struct(_strip(info.type))
    ]
    stages = [
        (spec.name, spec.config_type, _module_path(spec.config_type))
        for spec in specs
        if spec.config_type is not None
    ]
    return core + stages


def _module_path(struct: type) -> str:
    return struct.__module__.replace(".", "/") + ".py"


def render(specs: Sequence[StageSpec]) -> str:
    """The whole reference as Markdown."""
    out = [INTRO]
    for name, struct, where in sections(specs):
        out.append(f"\n## `[{name}]`\n")
        out.append(f"{_markdown(_summary(struct))} Defined in `{where}`.\n")
        out.append("| key | type | default | meaning |")
        out.append("|---|---|---|---|")
        for row in rows(struct, name):
            out.append(f"| `{row.path}` | {row.type} | {row.default} | {row.meaning} |")
    return "\n".join(out) + "\n"

"""docs/config.md, written from the settings models: every key, its type, default and meaning.

The core's keys come from ``daz.config`` and each plugin's from its ``Config`` model (built-in
plugins always; installed third-party ones with ``installed=True``), so the page cannot drift
from the code: a test fails when the committed file differs from what this module writes.

    python -m daz.configdoc                        # print it
    python -m daz.configdoc --write docs/config.md # (re)write the file
    daz config docs [--write FILE] [--check FILE] [--installed]
"""
from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from daz.config import GO_COMPAT_KEYS, CoreConfig

if TYPE_CHECKING:  # pragma: no cover
    from daz.plugins.base import Plugin

REGENERATE = "python -m daz.configdoc --write docs/config.md"

INTRO = f"""\
# Configuration

<!-- Written by `{REGENERATE}` from the settings models
     (src/daz/config.py and each plugin's Config); edit those, not this file. -->

daz reads one JSON file (`daz run --config FILE`), in the Go Daz `config.json` format: a `core`
section and one section per plugin under `plugins`. Environment variables (`DAZ_*`) override
the file and flags override both; the keys that have one name it below. A wrong type or a
missing required key stops daz with an error naming the key; an unknown key is a warning
naming it, and is ignored. `config.example.json` is a starting point; `daz init` writes a
config for one channel.

Every key has its default, so a config needs only what differs: usually the rooms, and the
database unless the embedded one will do.
"""

PLUGINS_INTRO = """\
## Plugins

Each plugin's section is `plugins.<name>`. A plugin that is on by default runs unless its
section says `"enabled": false`; one that is off runs only with `"enabled": true`. A section
naming no installed plugin is a warning. A plugin's settings model (its `Config` class, see
docs/plugin-api.md) is what this part of the page is written from.
"""

GO_INTRO = """\
## Keys from a Go Daz config

A Go Daz `config.json` loads as it is. Keys Go and daz share are listed above with the other
keys (some, marked "Go key", are read in place of a daz key). These Go keys have no field in
daz and are accepted without a warning:
"""


def render(plugins: dict[str, type[Plugin]] | None = None) -> str:
    """The whole page. ``plugins``: name → Plugin class; default: the built-in plugins."""
    if plugins is None:
        from daz.plugins.registry import builtin_plugins

        plugins = builtin_plugins()
    out = [INTRO]
    out += _model_sections("core", CoreConfig, level=2)
    out.append(PLUGINS_INTRO)
    for name in sorted(plugins):
        cls = plugins[name]
        switch = ("On by default." if getattr(cls, "enabled_by_default", True)
                  else 'Off unless `"enabled": true`.')
        about = " ".join(filter(None, [_sentence(getattr(cls, "description", "")), switch]))
        out += _model_sections(f"plugins.{name}", cls.Config, level=3, about=about,
                               enabled=getattr(cls, "enabled_by_default", True))
    out.append(GO_INTRO)
    out.append("| key | what daz does with it |\n|---|---|")
    for key, meaning in GO_COMPAT_KEYS.items():
        out.append(f"| `{key}` | {_cell(meaning)} |")
    return "\n".join(out).rstrip("\n") + "\n"


def models(plugins: dict[str, type[Plugin]] | None = None) -> Iterator[tuple[str, type[BaseModel]]]:
    """Every settings model the page documents, with the config path it sits at."""
    if plugins is None:
        from daz.plugins.registry import builtin_plugins

        plugins = builtin_plugins()
    yield from _walk("core", CoreConfig)
    for name, cls in sorted(plugins.items()):
        yield from _walk(f"plugins.{name}", cls.Config)


# ------------------------------------------------------------------------------ sections


def _walk(path: str, model: type[BaseModel],
          seen: dict[type, str] | None = None) -> Iterator[tuple[str, type[BaseModel]]]:
    """``model`` and the models nested in it, each once (the first path it is found at)."""
    seen = {} if seen is None else seen
    seen[model] = path
    yield path, model
    for name, field in _fields(model):
        nested = _nested(field.annotation)
        if nested is not None and nested[1] not in seen:
            yield from _walk(f"{path}.{name}{nested[0]}", nested[1], seen)


def _fields(model: type[BaseModel]) -> list[tuple[str, FieldInfo]]:
    """The model's fields, ``enabled`` first (mixed-in fields otherwise come before it)."""
    return sorted(model.model_fields.items(), key=lambda item: item[0] != "enabled")


def _model_sections(path: str, model: type[BaseModel], *, level: int, about: str = "",
                    enabled: bool = True) -> list[str]:
    out = []
    where: dict[type, str] = {}
    for here, inner in list(_walk(path, model, where)):
        depth = level if here == path else level + 1
        out.append(f"{'#' * depth} `{here}`\n")
        text = about if here == path and about else _docstring(inner)
        if text:
            out.append(text + "\n")
        out.append("| key | type | default | meaning |\n|---|---|---|---|")
        for name, field in _fields(inner):
            row = _row(name, field, where)
            if here == path and name == "enabled" and not enabled:
                row = row.replace("| `true` |", "| `false` |", 1)
            out.append(row)
        out.append("")
    return out


def _row(name: str, field: FieldInfo, where: dict[type, str]) -> str:
    nested = _nested(field.annotation)
    if nested is not None:
        suffix, inner = nested
        kind = {"": "section", "[]": "list of sections", ".<name>": "sections by name"}[suffix]
        default = f"see `{where[inner]}`"
    else:
        kind = _type_name(field.annotation) + _bounds(field)
        default = _default(field)
    return (f"| `{name}` | {_cell(kind)} | {default} | "
            f"{_cell(_sentence(field.description or ''))} |")


def _nested(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """("", Model), ("[]", Model) or (".<name>", Model) for a field holding settings models."""
    annotation = _without_none(annotation)
    if _is_model(annotation):
        return "", annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and args and _is_model(args[0]):
        return "[]", args[0]
    if origin is dict and len(args) == 2 and _is_model(args[1]):
        return ".<name>", args[1]
    return None


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _without_none(annotation: Any) -> Any:
    args = typing.get_args(annotation)
    if _is_union(annotation) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


_SCALARS = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _type_name(annotation: Any) -> str:
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if annotation is Any or annotation is None:
        return "any"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if _is_union(annotation):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"list of {_plural(_type_name(args[0]))}" if args else "list"
    if origin is dict:
        return f"object ({_type_name(args[0])} → {_type_name(args[1])})" if args else "object"
    if origin is typing.Literal:
        return " or ".join(json.dumps(a) for a in args)
    return getattr(annotation, "__name__", str(annotation))


def _plural(name: str) -> str:
    return {"any": "anything"}.get(name, name + "s")


def _bounds(field: FieldInfo) -> str:
    parts = []
    shortest = longest = None
    for item in field.metadata:
        for kind, attr, sign in ((annotated_types.Ge, "ge", "≥"), (annotated_types.Gt, "gt", ">"),
                                 (annotated_types.Le, "le", "≤"), (annotated_types.Lt, "lt", "<")):
            if isinstance(item, kind):
                parts.append(f"{sign} {getattr(item, attr)}")
        if isinstance(item, annotated_types.MinLen):
            shortest = item.min_length
        if isinstance(item, annotated_types.MaxLen):
            longest = item.max_length
    if shortest is not None or longest is not None:
        parts.append(f"{shortest or 0}-{longest} characters" if longest is not None
                     else f"at least {shortest} characters")
    return (", " + ", ".join(parts)) if parts else ""


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True, validated_data={})
    if isinstance(value, BaseModel):
        return "see below"
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _docstring(model: type[BaseModel]) -> str:
    doc = model.__doc__ or ""
    if not doc or doc == BaseModel.__doc__:
        return ""
    return " ".join(doc.split()).replace("``", "`")


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if not text or text.endswith((".", "!", "?")) else text + "."


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: no pipes, no tags, no stray emphasis."""
    for char in ("\\", "|", "<", "*"):
        text = text.replace(char, "\\" + char)
    return text


# ------------------------------------------------------------------------------ command line


def check(path: Path, text: str) -> str | None:
    """None when ``path`` holds ``text``; else why not, with the command that fixes it."""
    try:
        current = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"{path} does not exist: run `{REGENERATE}`"
    if current != text:
        return f"{path} is stale (the settings models changed): run `{REGENERATE}`"
    return None


def installed_and_builtin() -> dict[str, type[Plugin]]:
    from daz.plugins.registry import builtin_plugins, installed_plugins

    return {**installed_plugins(), **builtin_plugins()}


def produce(*, installed: bool = False, write: Path | None = None,
            check_file: Path | None = None) -> tuple[str | None, str]:
    """What the docs commands (``daz config docs``, ``python -m daz.configdoc``) do: check
    ``check_file``, or write the page to ``write``, or neither. Returns (the problem when
    ``check_file`` is stale, what to print: the page itself when neither was asked)."""
    text = render(installed_and_builtin() if installed else None)
    if check_file is not None:
        problem = check(check_file, text)
        return problem, "" if problem else f"{check_file} is up to date\n"
    if write is not None:
        write.write_text(text, encoding="utf-8")
        return None, f"wrote {write}\n"
    return None, text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m daz.configdoc", description=__doc__.split(
        "\n\n", 1)[0])
    parser.add_argument("--write", metavar="FILE", type=Path, help="write the page to FILE")
    parser.add_argument("--check", metavar="FILE", type=Path,
                        help="exit 1 when FILE is not what would be written")
    parser.add_argument("--installed", action="store_true",
                        help="document installed third-party plugins too")
    args = parser.parse_args(argv)
    problem, output = produce(installed=args.installed, write=args.write,
                              check_file=args.check)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    if not args.check:  # a check that passes is silent here
        sys.stdout.write(output)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

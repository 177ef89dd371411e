"""How an event declares where its fields come from, and the one parser that reads them.

Each event class in events.py lists its fields in a table, attribute name → how to read it::

    fields = table(username=text("name"), rank=number("rank"))

A reader for a member of an object payload (``text``, ``number``, ``whole``, ``flag``, ``obj``,
``nested``, ``position``) pulls ``payload[key]`` through a ``PayloadReader``: a value of the
wrong type becomes the field's default and the reason is kept. Events whose payload is not an
object (a bare number, a list, true/false, a string) read the payload itself (``bare_number``,
``list_of``, ``bare_flag``, ``bare_text``); one table does not mix the two kinds. A payload that may
come in a short form (``delete`` as a bare uid, ``queueFail`` as a bare message) declares it in
``short_form``. The problems become the event's ``malformed`` text, in table order.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from daz.cytube.payload_reader import PayloadReader, read_number

# One field of a table: (read, key, default). A member reader is called as
# ``read(reader, key, default)``, a reader of the whole payload as
# ``read(payload, problems, key, default)``.
Reader = Callable[..., Any]
FieldSpec = tuple[Reader, Any, Any]
# A short form: the payload → the fields it stands for, or None when the payload is not one.
ShortForm = Callable[[Any], "dict[str, Any] | None"]


def table(**fields: FieldSpec) -> Mapping[str, FieldSpec]:
    """A model's field table, attribute → reader, in the order the problems are reported. Read
    only: the parser is written from it once, when the class is defined."""
    return MappingProxyType(fields)


# --------------------------------------------------------------------------- members of an object

def text(key: str, default: str = "") -> FieldSpec:
    """A string member; a number is taken as its digits."""
    return (PayloadReader.str, key, default)


def number(key: str, default: float = 0.0) -> FieldSpec:
    """A finite number (int or float as sent; a numeric string is read as its number)."""
    return (PayloadReader.num, key, default)


def whole(key: str, default: int = 0) -> FieldSpec:
    """A number cut to an int."""
    return (PayloadReader.int, key, default)


def flag(key: str, default: bool = False) -> FieldSpec:
    """true/false (0 and 1 are accepted too)."""
    return (PayloadReader.bool, key, default)


def _object(r: PayloadReader, key: str | None, default: None) -> dict:
    return r.dict(key) if key is not None else dict(r.data)


def obj(key: str | None = None) -> FieldSpec:
    """An object member, or with no key a copy of the whole object payload."""
    return (_object, key, None)


def _nested(r: PayloadReader, key: str | None, parse: Callable[[Any, list[str]], Any]) -> Any:
    return parse(r.data if key is None else r.dict(key), r.problems)


def nested(value_type: Any, key: str | None = None) -> FieldSpec:
    """A value object (values.py) parsed from a member, or with no key from the payload itself."""
    return (_nested, key, value_type.parse)


def _after(r: PayloadReader, key: str, default: int | str) -> int | str:
    value = r.data.get(key)
    if isinstance(value, bool):
        return default
    if isinstance(value, (int, float)):
        try:
            return int(value)
        except (OverflowError, ValueError):  # inf / nan
            return default
    if isinstance(value, str):
        if value in ("prepend", "append"):
            return value
        try:
            return int(value)
        except ValueError:
            return default
    return default


def position(key: str) -> FieldSpec:
    """Where a playlist item goes (``after`` in queue/moveVideo): a uid, or "prepend"/"append";
    anything else is "append", silently, as the server itself would place it last."""
    return (_after, key, "append")


# --------------------------------------------------------------------------- other payloads

def _bare_number(payload: Any, problems: list[str], label: str,
                 rule: tuple[float, Callable[[float], Any]]) -> Any:
    default, convert = rule
    return convert(read_number(payload, default, label, problems))


def bare_number(label: str, default: float, convert: Callable[[float], Any] = lambda v: v
                ) -> FieldSpec:
    """The payload is a number; ``label`` names it in the problem text."""
    return (_bare_number, label, (default, convert))


def _list_of(payload: Any, problems: list[str], key: None,
             rule: tuple[Callable, Callable[[Any], bool]]) -> list:
    parse, keep = rule
    if not isinstance(payload, list):
        problems.append(f"expected a list, got {type(payload).__name__}")
        return []
    values = [parse(entry, problems) for entry in payload]
    return [v for v in values if keep(v)]


def list_of(value_type: Any, keep: Callable[[Any], bool]) -> FieldSpec:
    """The payload is a list of value objects; those ``keep`` refuses are left out."""
    return (_list_of, None, (value_type.parse, keep))


def _bare_flag(payload: Any, problems: list[str], key: None, default: bool) -> bool:
    if isinstance(payload, bool):
        return payload
    problems.append(f"expected true/false, got {type(payload).__name__}")
    return default


def bare_flag() -> FieldSpec:
    """The payload is true or false (strictly: 0 and 1 are not)."""
    return (_bare_flag, None, False)


def _bare_text(payload: Any, problems: list[str], member: str | None, default: str) -> str:
    if member is not None and isinstance(payload, dict):
        payload = payload.get(member, "")
    if isinstance(payload, str):
        return payload
    problems.append(f"expected text, got {type(payload).__name__}")
    return default


def bare_text(wrapped_in: str | None = None) -> FieldSpec:
    """The payload is a string; some servers wrap it in an object as ``wrapped_in``."""
    return (_bare_text, wrapped_in, "")


_WHOLE_PAYLOAD = frozenset({_bare_number, _list_of, _bare_flag, _bare_text})


# --------------------------------------------------------------------------- short forms

def short_number(attr: str) -> ShortForm:
    """A bare number stands for ``{attr: int(number)}``."""
    def read(payload: Any) -> dict[str, Any] | None:
        if isinstance(payload, (int, float)) and not isinstance(payload, bool):
            return {attr: int(payload)}
        return None
    return read


def short_text(attr: str) -> ShortForm:
    """A bare string stands for ``{attr: string}``."""
    def read(payload: Any) -> dict[str, Any] | None:
        return {attr: payload} if isinstance(payload, str) else None
    return read


# --------------------------------------------------------------------------- the parser

Parser = Callable[[Any, list[str]], "dict[str, Any]"]


def _constant(value: Any, name: str, namespace: dict[str, Any]) -> str:
    """``value`` as written in the parser's code: a literal when it is a plain one (read as a
    constant, not looked up), else a name bound to it in ``namespace``."""
    if value is None or type(value) in (str, int, bool):
        return repr(value)
    namespace[name] = value
    return name


def compile_parser(fields: Mapping[str, FieldSpec], *,
                   short_form: ShortForm | None, derive: Callable[[dict[str, Any]], None] | None,
                   model: str) -> Parser:
    """One function reading every field of ``fields`` from a payload: ``parse(payload, problems)``
    → the attributes, with what did not fit added to ``problems`` (in table order).

    Written out as straight-line code once per model, as ``dataclasses`` writes ``__init__``:
    this runs for every frame a room receives, and a loop over the table cost a fifth of the
    parsing speed of the hand-written parsers it replaced (bench/bench_parse_events.py)."""
    namespace: dict[str, Any] = {"PayloadReader": PayloadReader, "short_form": short_form,
                                 "derive": derive}
    whole = [read in _WHOLE_PAYLOAD for read, _, _ in fields.values()]
    if any(whole) and not all(whole):
        raise TypeError(f"{model}: a table reads either members of an object payload or the"
                        " whole payload, not both")
    lines = ["def parse(payload, problems):"]
    if short_form is not None:
        lines += ["    short = short_form(payload)",
                  "    if short is not None:",
                  "        return short"]
    if not fields:
        lines.append("    return {}")
    else:
        members = []
        for number, (attr, (read, key, default)) in enumerate(fields.items()):
            if not attr.isidentifier():
                raise TypeError(f"{model}: {attr!r} cannot be an attribute name")
            key_code = _constant(key, f"key_{number}", namespace)
            if read is _nested:  # the value object's parser, called straight from here
                namespace[f"parse_{number}"] = default
                source = "r.data" if key is None else f"r.dict({key_code})"
                members.append(f"{attr!r}: parse_{number}({source}, r.problems)")
                continue
            namespace[f"read_{number}"] = read
            default_code = _constant(default, f"default_{number}", namespace)
            reader = "payload, problems" if read in _WHOLE_PAYLOAD else "r"
            members.append(f"{attr!r}: read_{number}({reader}, {key_code}, {default_code})")
        if all(whole):  # no object to read members from: problems go straight to the list
            lines.append("    values = {" + ", ".join(members) + "}")
        else:
            lines += ["    r = PayloadReader(payload)",
                      "    values = {" + ", ".join(members) + "}",
                      "    if r.problems:",
                      "        problems.extend(r.problems)"]
        if derive is not None:
            lines.append("    derive(values)")
        lines.append("    return values")
    exec(compile("\n".join(lines), f"<fields of {model}>", "exec"), namespace)
    return namespace["parse"]

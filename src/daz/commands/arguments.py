"""Command arguments converted from the handler's annotations, and the usage line they imply.

A handler ``async def roll(self, ctx, sides: int = 6)`` gets ``sides`` as an ``int``; the
dispatcher converts the words before the handler runs and answers a line that does not fit with
the usage line, naming what was wrong (``"x" is not a whole number``). Supported annotations:

* ``str`` (or none): the word as typed.
* ``int``, ``float``: ASCII decimal numbers only (no ``1_000``, no ``nan``, no Arabic-Indic
  digits), so what the bot accepts is what a reader of the line sees.
* ``Literal["on", "off"]``: one of the choices, case-insensitively; the handler gets the
  declared spelling.
* ``User``: a CyTube name. Someone in the room first (compared as CyTube compares names, ASCII
  case-insensitively; the handler gets the name as the room shows it), else the name as typed
  when it can be a CyTube name (1-20 ASCII letters, digits, ``_`` or ``-``). ``@bob:`` is bob.
* ``X | None`` with a default: an optional ``X``.

An annotation outside this list is a start-up error naming the command and the parameter, not a
surprise the first time someone types the command.
"""
from __future__ import annotations

import inspect
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Union

from daz.humanize import NAME_TRAILERS, USERNAME, one_line

if TYPE_CHECKING:  # pragma: no cover
    from daz.cytube import values
    from daz.cytube.state import RoomState


class ArgumentError(ValueError):
    """One word that does not convert; the text says why, for the person who typed it."""


class User(str):
    """A user name argument: the name as the room shows it when they are here (``here`` is
    their ``daz.cytube.values.User`` in the room's state), else as typed (``here`` is None)."""

    here: values.User | None

    def __new__(cls, name: str, here: values.User | None = None) -> User:
        obj = super().__new__(cls, name)
        obj.here = here
        return obj


def quoted(word: str) -> str:
    """A word someone typed, quoted for a reply: one line, at most 30 characters."""
    return '"' + one_line(word, 30) + '"'


_INT = re.compile(r"[+-]?[0-9]{1,15}")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")


def to_int(word: str, state: RoomState | None) -> int:
    if not _INT.fullmatch(word):
        raise ArgumentError(f"{quoted(word)} is not a whole number")
    return int(word)


def to_float(word: str, state: RoomState | None) -> float:
    value = float(word) if _FLOAT.fullmatch(word) and len(word) <= 40 else math.nan
    if not math.isfinite(value):
        raise ArgumentError(f"{quoted(word)} is not a number")
    return value


def to_str(word: str, state: RoomState | None) -> str:
    return word


def to_user(word: str, state: RoomState | None) -> User:
    name = word.strip().lstrip("@").rstrip(NAME_TRAILERS)
    if not USERNAME.match(name):  # ASCII only: CyTube names are, and so is its comparison
        raise ArgumentError(f"{quoted(word)} is not a CyTube name (1-20 letters, digits,"
                            " _ or -)")
    here = state.user(name) if state is not None else None
    if here is not None and here.name.isascii() and here.name.lower() == name.lower():
        return User(here.name, here)
    return User(name)


def _choices(values: tuple[Any, ...]) -> Callable[[str, RoomState | None], Any]:
    by_key = {str(v).lower(): v for v in values}
    listed = ", ".join(str(v) for v in values)

    def to_choice(word: str, state: RoomState | None) -> Any:
        try:
            return by_key[word.lower()]
        except KeyError:
            raise ArgumentError(f"{quoted(word)} is not one of {listed}") from None

    return to_choice


_SIMPLE: dict[Any, Callable[[str, RoomState | None], Any]] = {
    str: to_str, Any: to_str, inspect.Parameter.empty: to_str,
    int: to_int, float: to_float, User: to_user}


def converter_for(annotation: Any) -> tuple[Callable[[str, RoomState | None], Any], str]:
    """(converter, how the usage line shows it: "" for the parameter's name, or the choices)."""
    simple = _SIMPLE.get(annotation) if isinstance(annotation, typing.Hashable) else None
    if simple is not None:
        return simple, ""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        values = typing.get_args(annotation)
        return _choices(values), "|".join(str(v) for v in values)
    if origin in (Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(inner) == 1:
            return converter_for(inner[0])
    raise TypeError(f"unsupported annotation {annotation!r} (use str, int, float, Literal[...]"
                    " or User)")


@dataclass(frozen=True)
class Parameter:
    name: str
    convert: Callable[[str, RoomState | None], Any]
    shown: str  # "<sides>", "[sides]", "on|off", "[message...]"
    required: bool
    variadic: bool


def _annotations(fn: Callable[..., Any], names: list[str]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # a TYPE_CHECKING-only name elsewhere in the signature: resolve ours only
        pass
    func = getattr(fn, "__func__", fn)
    out = {}
    for name in names:
        raw = func.__annotations__.get(name, inspect.Parameter.empty)
        if isinstance(raw, str):
            try:
                raw = eval(raw, func.__globals__)
            except Exception as exc:
                raise TypeError(f"parameter {name!r}: cannot resolve annotation {raw!r}"
                                f" ({exc})") from None
        out[name] = raw
    return out


class Signature:
    """The arguments a handler takes after ``ctx``, and how to convert words into them."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        params = list(inspect.signature(fn).parameters.values())[1:]  # skip ctx
        hints = _annotations(fn, [p.name for p in params])
        self.params: list[Parameter] = []
        for p in params:
            if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL):
                continue  # keyword-only parameters are not filled from the line
            try:
                convert, choices = converter_for(hints.get(p.name, p.empty))
            except TypeError as exc:
                raise TypeError(f"parameter {p.name!r}: {exc}") from None
            variadic = p.kind == p.VAR_POSITIONAL
            required = not variadic and p.default is p.empty
            word = choices or p.name
            shown = (f"[{word}...]" if variadic else f"<{word}>" if required and not choices
                     else word if required else f"[{word}]")
            self.params.append(Parameter(p.name, convert, shown, required, variadic))
        self.min_args = sum(p.required for p in self.params)
        self.max_args: int | None = (None if any(p.variadic for p in self.params)
                                     else len(self.params))

    def fits(self, count: int) -> bool:
        return self.min_args <= count and (self.max_args is None or count <= self.max_args)

    def usage(self, words: str) -> str:
        """``!roll [sides]`` for ``words="!roll"``."""
        return " ".join([words, *(p.shown for p in self.params)])

    def convert(self, args: list[str], state: RoomState | None) -> list[Any]:
        """The converted values; ArgumentError naming the first problem when they do not fit.

        A line with no words at all gets no complaint (the usage line says what is needed)."""
        if not self.fits(len(args)):
            if not args:
                raise ArgumentError("")
            if len(args) < self.min_args:
                missing = [p.shown for p in self.params if p.required][len(args):]
                raise ArgumentError(f"missing {' '.join(missing)}")
            extra = args[self.max_args or 0:]
            raise ArgumentError(f"{'one word' if len(extra) == 1 else f'{len(extra)} words'} too"
                                f" many: {quoted(' '.join(extra))}")
        out: list[Any] = []
        for i, word in enumerate(args):
            param = self.params[min(i, len(self.params) - 1)]
            try:
                out.append(param.convert(word, state))
            except ArgumentError as exc:
                raise ArgumentError(f"{param.name}: {exc}") from None
        return out

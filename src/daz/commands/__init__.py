"""The command registry, the command-line parser and the context a command handler gets.

The registry is built from every loaded plugin's ``@command`` declarations (a name or alias
declared twice is an error naming both plugins), with their subcommands and the argument
conversions their handlers' annotations ask for (``daz.commands.arguments``). The dispatcher
decides *whether* a command runs (rank, cooldown, enabled); this module knows *what* a command
is and how to call it.
"""
from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from daz.commands.arguments import ArgumentError, Signature, User, quoted
from daz.plugins.base import CommandSpec, SubcommandSpec

__all__ = [
    "CommandConflict",
    "CommandContext",
    "CommandDeclarationError",
    "CommandRegistry",
    "RegisteredCommand",
    "Subcommand",
    "UsageError",
    "User",
    "parse_command",
]

if TYPE_CHECKING:  # pragma: no cover
    from daz.cytube.events import ChatMessage, PrivateMessage
    from daz.cytube.room import Room


class CommandDeclarationError(ValueError):
    """A plugin's ``@command`` cannot be registered; start-up stops with this message."""


class CommandConflict(CommandDeclarationError):
    pass


class UsageError(ValueError):
    """The line does not fit the command; the dispatcher answers with the usage line and, when
    known, what was wrong (``problem``)."""

    def __init__(self, usage: str, problem: str = "") -> None:
        super().__init__(usage)
        self.usage = usage
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.usage} ({self.problem})" if self.problem else self.usage


class CommandRefused(Exception):
    """A handler turns the caller away (e.g. a subcommand for admins only). The dispatcher
    answers with this text in one PM, as for every other refusal, never in public chat."""


# ---------------------------------------------------------------------------- parsing

# A quoted group starts only at the beginning of a word and ends at a matching quote followed by
# whitespace or the end, so apostrophes inside words ("don't") are ordinary characters.
_TOKEN = re.compile(r"""(?:(?<=\s)|^)(["'])(.*?)\1(?=\s|$)|(\S+)""", re.S)


_FIRST_WORD = re.compile(r"(\S+)(\s*)(.*)", re.S)


@dataclass(frozen=True)
class ParsedCommand:
    name: str  # lower-cased, without prefix
    args: list[str]
    rest: str  # everything after the command word, as typed


def parse_command(text: str, prefix: str = "!") -> ParsedCommand | None:
    """``"!tell bob don't forget"`` → name "tell", args ["bob", "don't", "forget"].

    ``text`` must already be plain text (HTML-unescaped). Returns None for non-commands,
    including a lone prefix or a prefix followed by whitespace.
    """
    if not prefix or not text.startswith(prefix):
        return None
    body = text[len(prefix):]
    if not body or body[0].isspace():
        return None
    first = _FIRST_WORD.match(body)
    if first is None:  # cannot happen: body starts with a non-space
        return None
    word, _, rest = first.groups()
    name = word.lower()
    if not name:
        return None
    rest = rest.strip()
    args = [m.group(2) if m.group(1) else m.group(3) for m in _TOKEN.finditer(rest)]
    return ParsedCommand(name=name, args=args, rest=rest)


def after_first_word(text: str) -> str:
    """``"cancel  #5 now"`` → ``"#5 now"``: the text after a subcommand word, as typed."""
    found = _FIRST_WORD.match(text.strip())
    return found.group(3).strip() if found else ""


# ---------------------------------------------------------------------------- registry


@dataclass
class Subcommand:
    spec: SubcommandSpec
    handler: Callable[..., Awaitable[Any]]  # bound method: handler(ctx, *args)
    signature: Signature
    usage: str  # declared, or made from the signature: "!greeter test [user]"

    @property
    def name(self) -> str:
        return self.spec.name

    def bind(self, args: list[str], state: Any = None) -> list[Any]:
        return _convert(self.signature, args, state, self.usage)


@dataclass
class RegisteredCommand:
    spec: CommandSpec
    plugin: str
    handler: Callable[..., Awaitable[Any]]  # bound method: handler(ctx, *args)
    enabled: bool = True
    signature: Signature = None  # type: ignore[assignment]  # made from handler when not given
    subcommands: list[Subcommand] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.signature is None:
            self.signature = Signature(self.handler)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def min_args(self) -> int:
        return self.signature.min_args

    @property
    def max_args(self) -> int | None:  # None: unlimited
        return self.signature.max_args

    @property
    def usage(self) -> str:
        """Declared, or made from the subcommands' and the handler's signatures."""
        if self.spec.usage:
            return self.spec.usage
        if self.subcommands:
            return " | ".join(sub.usage for sub in self.subcommands)
        return self.signature.usage(f"!{self.spec.name}")

    def subcommand(self, word: str) -> Subcommand | None:
        word = word.lower()
        for sub in self.subcommands:
            if word == sub.name or word in sub.spec.aliases:
                return sub
        return None

    def route(self, args: list[str]) -> tuple[Subcommand | None, list[str]]:
        """Which handler a line's words go to (None: the command's own), and its words.

        A first word naming a subcommand picks it. When the words after it do not fit that
        subcommand but the whole line fits the command's own handler, the handler gets the
        line: ``!tell list me later`` is a message for someone called list.
        """
        sub = self.subcommand(args[0]) if args else None
        if sub is None:
            if self.spec.require_subcommand:
                words = ", ".join(s.name for s in self.subcommands)
                raise UsageError(self.usage, f"{quoted(args[0])} is not one of {words}"
                                 if args else "")
            return None, args
        if (not sub.signature.fits(len(args) - 1) and not self.spec.require_subcommand
                and self.signature.fits(len(args))):
            return None, args
        return sub, args[1:]

    def bind(self, args: list[str], state: Any = None) -> list[Any]:
        """The converted arguments for the command's own handler (UsageError if they do not
        fit). ``state`` is the room's ``RoomState``, for ``User`` arguments."""
        return _convert(self.signature, args, state, self.usage)


def _convert(signature: Signature, args: list[str], state: Any, usage: str) -> list[Any]:
    try:
        return signature.convert(args, state)
    except ArgumentError as exc:
        raise UsageError(usage, str(exc)) from None


def _subcommands(plugin: str, spec: CommandSpec,
                 handler: Callable[..., Any]) -> list[Subcommand]:
    """The subcommands declared under ``handler``, bound to the same plugin instance."""
    owner = getattr(handler, "__self__", None)
    declared = getattr(getattr(handler, "__func__", handler), "__daz_subcommands__", ())
    out: list[Subcommand] = []
    taken: set[str] = set()
    for sub_spec, fn in declared:
        bound = fn.__get__(owner, type(owner)) if owner is not None else fn
        for word in (sub_spec.name, *sub_spec.aliases):
            if word in taken:
                raise CommandDeclarationError(
                    f"subcommand {spec.name} {word!r} is declared twice in plugin {plugin!r}")
            taken.add(word)
        try:
            signature = Signature(bound)
        except TypeError as exc:
            raise CommandDeclarationError(
                f"command {spec.name} {sub_spec.name} (plugin {plugin!r}): {exc}") from None
        usage = sub_spec.usage or signature.usage(f"!{spec.name} {sub_spec.name}")
        out.append(Subcommand(spec=sub_spec, handler=bound, signature=signature, usage=usage))
    if spec.require_subcommand and not out:
        raise CommandDeclarationError(
            f"command {spec.name} (plugin {plugin!r}) requires a subcommand but declares none")
    return out


class CommandRegistry:
    def __init__(self) -> None:
        self._by_name: dict[str, RegisteredCommand] = {}
        self._lookup: dict[str, RegisteredCommand] = {}

    def register(self, plugin: str, spec: CommandSpec,
                 handler: Callable[..., Any]) -> RegisteredCommand:
        for word in (spec.name, *spec.aliases):
            taken = self._lookup.get(word)
            if taken is not None:
                raise CommandConflict(
                    f"command {word!r} is declared by both {taken.plugin!r} and {plugin!r}")
        try:
            signature = Signature(handler)
        except TypeError as exc:
            raise CommandDeclarationError(
                f"command {spec.name} (plugin {plugin!r}): {exc}") from None
        entry = RegisteredCommand(spec=spec, plugin=plugin, handler=handler,
                                  enabled=spec.enabled, signature=signature,
                                  subcommands=_subcommands(plugin, spec, handler))
        self._by_name[spec.name] = entry
        for word in (spec.name, *spec.aliases):
            self._lookup[word] = entry
        return entry

    def unregister_plugin(self, plugin: str) -> None:
        for word, entry in list(self._lookup.items()):
            if entry.plugin == plugin:
                del self._lookup[word]
        for name, entry in list(self._by_name.items()):
            if entry.plugin == plugin:
                del self._by_name[name]

    def resolve(self, word: str) -> RegisteredCommand | None:
        return self._lookup.get(word.lower())

    def all(self) -> list[RegisteredCommand]:
        return sorted(self._by_name.values(), key=lambda c: c.name)

    def __len__(self) -> int:
        return len(self._by_name)


# ---------------------------------------------------------------------------- context


@dataclass
class CommandContext:
    """What a command handler gets: who asked, where, and how to answer."""

    room: Room
    event: ChatMessage | PrivateMessage
    command: RegisteredCommand
    invoked_as: str
    args: list[str]
    rest: str
    username: str
    rank: float
    is_admin: bool
    via_pm: bool
    replies: list[str] = field(default_factory=list)
    subcommand: str | None = None  # the subcommand that runs; args and rest are what follows it

    @property
    def channel(self) -> str:
        return self.room.channel

    async def reply(self, text: str) -> None:
        """Answer where the command came from (or where the command declared)."""
        self.replies.append(text)
        target = self.command.spec.reply_to
        if target == "pm" or (target == "origin" and self.via_pm):
            await self.room.pm(self.username, text)
        else:
            await self.room.say(text)

    async def reply_pm(self, text: str) -> None:
        self.replies.append(text)
        await self.room.pm(self.username, text)

    async def say(self, text: str) -> None:
        self.replies.append(text)
        await self.room.say(text)

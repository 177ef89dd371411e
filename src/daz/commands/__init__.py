"""The command registry, the command-line parser and the context a command handler gets.

The registry is built from every loaded plugin's ``@command`` declarations (a name or alias
declared twice is an error naming both plugins). The eventfilter plugin decides *whether* a
command runs (rank, cooldown, enabled); this module knows *what* a command is and how to call it.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from daz.plugins.base import CommandSpec

if TYPE_CHECKING:  # pragma: no cover
    from daz.cytube.events import ChatMessage, PrivateMessage
    from daz.cytube.room import Room


class CommandConflict(ValueError):
    pass


class UsageError(ValueError):
    """Wrong number of arguments; the dispatcher answers with the usage line."""


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
    word, _, rest = _FIRST_WORD.match(body).groups()
    name = word.lower()
    if not name:
        return None
    rest = rest.strip()
    args = [m.group(2) if m.group(1) else m.group(3) for m in _TOKEN.finditer(rest)]
    return ParsedCommand(name=name, args=args, rest=rest)


# ---------------------------------------------------------------------------- registry


@dataclass
class RegisteredCommand:
    spec: CommandSpec
    plugin: str
    handler: Callable[..., Awaitable[Any]]  # bound method: handler(ctx, *args)
    enabled: bool = True
    min_args: int = 0
    max_args: int | None = 0  # None: unlimited

    @property
    def name(self) -> str:
        return self.spec.name

    def bind(self, args: list[str]) -> list[str]:
        if len(args) < self.min_args or (self.max_args is not None and len(args) > self.max_args):
            raise UsageError(self.spec.usage or f"!{self.spec.name}")
        return args


def _arity(handler: Callable) -> tuple[int, int | None]:
    params = list(inspect.signature(handler).parameters.values())[1:]  # skip ctx
    required = 0
    maximum: int | None = 0
    for p in params:
        if p.kind == p.VAR_POSITIONAL:
            maximum = None
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            if p.default is p.empty:
                required += 1
            if maximum is not None:
                maximum += 1
    return required, maximum


class CommandRegistry:
    def __init__(self) -> None:
        self._by_name: dict[str, RegisteredCommand] = {}
        self._lookup: dict[str, RegisteredCommand] = {}

    def register(self, plugin: str, spec: CommandSpec, handler: Callable) -> RegisteredCommand:
        for word in (spec.name, *spec.aliases):
            taken = self._lookup.get(word)
            if taken is not None:
                raise CommandConflict(
                    f"command {word!r} is declared by both {taken.plugin!r} and {plugin!r}")
        lo, hi = _arity(handler)
        entry = RegisteredCommand(spec=spec, plugin=plugin, handler=handler,
                                  enabled=spec.enabled, min_args=lo, max_args=hi)
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

    room: "Room"
    event: "ChatMessage | PrivateMessage"
    command: RegisteredCommand
    invoked_as: str
    args: list[str]
    rest: str
    username: str
    rank: float
    is_admin: bool
    via_pm: bool
    replies: list[str] = field(default_factory=list)

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

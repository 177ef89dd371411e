"""The command dispatcher: turns chat lines and PMs into command calls. Part of the core.

For each ``!name args`` line (chat or PM, plain text, never replayed history or our own echo)
it resolves the command in the registry, then checks, in this order: enabled, PM-only,
admin-only, rank (from the room's user list, PMs too), the subcommand's admin-only and rank,
the arguments (count, and conversion to the handler's annotations), per-user cooldown (shared
by aliases and subcommands). A refusal gets one short PM saying why, at most one per user per
``notice_interval`` seconds; never a line in public chat. An unknown command gets no answer.

Commands run in their own task, so a slow command (a database lookup, an LLM call) never delays
the next line's dispatch. Every attempt is counted (``daz_commands_total``), timed, and
published as ``CommandExecuted``; whoever keeps an audit log listens to that event.

Who is an admin: a name in ``core.admin_users`` (or Go's ``plugins.eventfilter.admin_users``)
who is in the room now, logged in with a registered account (rank 1 or more). Names compare as
CyTube compares them: ASCII letters case-insensitively, anything else exactly, so a guest who
takes an admin's unregistered name, or spells it with a look-alike letter, is no admin.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from daz.commands import (
    CommandContext,
    CommandRefused,
    ParsedCommand,
    RegisteredCommand,
    UsageError,
    after_first_word,
    parse_command,
)
from daz.commands.limits import Cooldowns, NoticeLimiter
from daz.config import CommandsConfig, ConfigError, format_validation_error
from daz.cytube.events import ChatMessage, PrivateMessage
from daz.cytube.state import name_key
from daz.events import CommandExecuted
from daz.plugins.base import COMMAND_PRIORITY

if TYPE_CHECKING:  # pragma: no cover
    from daz.bus import Subscription

log = logging.getLogger(__name__)

UNKNOWN = "(unknown)"  # metric label for unknown names: user text must not become label values
OWNER = "commands"  # the bus subscription owner shown in /health and metrics

# The eventfilter plugin's keys the Go bot (and earlier daz) used for these settings; read when
# core.commands does not set them.
GO_KEYS = {"prefix": "command_prefix", "default_cooldown": "default_cooldown",
           "notice_interval": "notice_interval", "max_line_length": "max_line_length"}


def ascii_name_key(name: str) -> str | None:
    """``name_key`` for a name CyTube could have; None for a non-ASCII one, which never matches."""
    return name_key(name) if name.isascii() else None


def _listed_admins(app_config: Any) -> list[str]:
    section = app_config.plugin_section("eventfilter")
    return [n for n in (*app_config.core.admin_users, *(section.get("admin_users") or []))
            if isinstance(n, str) and n]


def command_settings(app_config: Any) -> tuple[CommandsConfig, frozenset[str]]:
    """The effective command settings and admin names (keys as ``ascii_name_key`` makes them).

    ``core.commands`` wins where it sets a key; otherwise the Go eventfilter key is read.
    """
    core = app_config.core
    section = app_config.plugin_section("eventfilter")
    explicit = core.commands.model_fields_set
    merged = core.commands.model_dump()
    for key, go_key in GO_KEYS.items():
        if key not in explicit and go_key in section:
            merged[key] = section[go_key]
    try:
        settings = CommandsConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, prefix="core.commands")) from None
    admins = frozenset(key for n in _listed_admins(app_config)
                       for key in [ascii_name_key(n)] if key is not None)
    return settings, admins


def warn_about_impossible_admins(app_config: Any) -> None:
    for name in _listed_admins(app_config):
        if ascii_name_key(name) is None:
            log.warning("admin_users: %r can never match a CyTube name (names are ASCII);"
                        " ignored", name)


def command_prefix(app_config: Any) -> str:
    """The prefix commands start with, for anything that shows or skips command lines."""
    return command_settings(app_config)[0].prefix


@dataclass
class Refusal:
    outcome: str  # "disabled", "pm_only", "admin", "rank", "usage", "cooldown"
    why: str


@dataclass
class Call:
    """What runs when the checks pass: the handler with its converted arguments."""

    handler: Callable[..., Awaitable[Any]]
    values: list[Any]
    subcommand: str | None
    args: list[str]  # the words after the subcommand word (all of them without one)
    rest: str


class CommandDispatcher:
    """Subscribes to chat and PMs on the bus and runs the commands in the registry."""

    def __init__(self, *, bus: Any, rooms: Any, registry: Any, clock: Any, metrics: Any,
                 settings: CommandsConfig, admins: Iterable[str]) -> None:
        self.bus = bus
        self.rooms = rooms
        self.registry = registry
        self.clock = clock
        self.metrics = metrics
        self.settings = settings
        self.prefix = settings.prefix
        self.admins = frozenset(admins)
        self.cooldowns = Cooldowns()
        self.notices = NoticeLimiter(settings.notice_interval)
        self.running: set[asyncio.Future[Any]] = set()
        self._subscriptions: list[Subscription] = []

    @classmethod
    def from_config(cls, app_config: Any, **parts: Any) -> CommandDispatcher:
        warn_about_impossible_admins(app_config)
        settings, admins = command_settings(app_config)
        return cls(settings=settings, admins=admins, **parts)

    def start(self) -> None:
        for kind in (ChatMessage, PrivateMessage):
            self._subscriptions.append(self.bus.subscribe(
                f"cytube.event.{kind.name}", self.dispatch, owner=OWNER,
                priority=COMMAND_PRIORITY, kinds=(kind,), skip_ignored=True))

    async def stop(self, timeout: float = 10.0) -> None:
        """No new commands; wait (bounded) for the running ones and what they published."""
        for sub in self._subscriptions:
            self.bus.unsubscribe(sub)
        self._subscriptions.clear()
        await self.settle(timeout)

    async def settle(self, timeout: float = 5.0) -> None:
        """Every command task started so far (and the events they publish) finished."""
        for _ in range(5):
            running = list(self.running)
            if not running:
                return
            await asyncio.wait(running, timeout=timeout)

    def prune(self) -> None:
        self.cooldowns.prune(self.clock.monotonic())

    # ------------------------------------------------------------------ dispatch

    async def dispatch(self, event: ChatMessage | PrivateMessage) -> None:
        text = event.text
        if not text.startswith(self.prefix) or len(text) > self.settings.max_line_length:
            return  # the hot path: almost every line ends here
        if event.ignored or event.own or not event.username:
            return  # the bus drops these already; a command must never run twice
        room = self.rooms.get(event.room_id)
        if room is None or room.state.is_self(event.username):
            return
        parsed = parse_command(text, self.prefix)
        if parsed is None:
            return
        via_pm = isinstance(event, PrivateMessage)
        user = event.username
        entry = self.registry.resolve(parsed.name)
        if entry is None:
            self._finish(event, UNKNOWN, parsed.name, user, parsed.args, via_pm, "unknown")
            return
        # Rank comes from the user list (chat payloads carry none). Someone who can talk to us
        # is at least a guest, so an absent entry (a join we have not seen yet) counts as 0.
        rank = max(room.state.rank_of(user), 0)
        is_admin = self.is_admin(room, user)
        call = self.check(entry, parsed, user, rank, is_admin, via_pm, room.state)
        if isinstance(call, Refusal):
            self._finish(event, entry.name, entry.name, user, parsed.args, via_pm,
                         call.outcome, call.why)
            await self._notice(room, user, call.why)
            return
        ctx = CommandContext(room=room, event=event, command=entry, invoked_as=parsed.name,
                             args=call.args, rest=call.rest, username=user, rank=rank,
                             is_admin=is_admin, via_pm=via_pm, subcommand=call.subcommand)
        self._track(asyncio.create_task(self._run(entry, ctx, call, parsed.args),
                                        name=f"command:{entry.name}"))

    def is_admin(self, room: Any, user: str) -> bool:
        key = ascii_name_key(user)
        if key is None or key not in self.admins:
            return False
        present = room.state.user(user)
        # A guest may take an unregistered admin name; only a logged-in account counts.
        return present is not None and ascii_name_key(present.name) == key and present.rank >= 1

    def check(self, entry: RegisteredCommand, parsed: ParsedCommand, user: str, rank: float,
              is_admin: bool, via_pm: bool, state: Any = None) -> Call | Refusal:
        """The call to make (and its cooldown is started), or why not."""
        name = entry.name
        spec = entry.spec
        shown = f"{self.prefix}{name}"
        if not entry.enabled:
            return Refusal("disabled", f"{shown} is switched off.")
        if spec.pm_only and not via_pm:
            return Refusal("pm_only", f"{shown} works only in a PM to me.")
        if spec.admin_only and not is_admin:
            return Refusal("admin", f"{shown} is for bot admins only.")
        if rank < spec.min_rank and not is_admin:
            return Refusal("rank", f"{shown} needs rank {spec.min_rank:g} (you have {rank:g}).")
        try:
            sub, words = entry.route(parsed.args)
            if sub is None:
                call = Call(entry.handler, entry.bind(words, state), None, words, parsed.rest)
            else:
                shown = f"{shown} {sub.name}"
                if sub.spec.admin_only and not is_admin:
                    return Refusal("admin", f"{shown} is for bot admins only.")
                if rank < sub.spec.min_rank and not is_admin:
                    return Refusal("rank", f"{shown} needs rank {sub.spec.min_rank:g}"
                                   f" (you have {rank:g}).")
                call = Call(sub.handler, sub.bind(words, state), sub.name, words,
                            after_first_word(parsed.rest))
        except UsageError as exc:
            return Refusal("usage", f"Usage: {exc}")
        cooldown = spec.cooldown or self.settings.default_cooldown
        if cooldown > 0 and not is_admin:
            now = self.clock.monotonic()
            left = self.cooldowns.remaining(user, name, now)
            if left > 0:
                return Refusal("cooldown", f"{shown}: wait {left:.0f}s." if left >= 1
                               else f"{shown}: wait a moment.")
            # Started before the handler runs: a failing command still costs its cooldown,
            # otherwise an error path becomes a way to spam.
            self.cooldowns.start(user, name, cooldown, now)
        return call

    async def _run(self, entry: RegisteredCommand, ctx: CommandContext, call: Call,
                   words: list[str]) -> None:
        started = time.perf_counter()
        outcome, detail = "ok", ""
        try:
            await call.handler(ctx, *call.values)
        except UsageError as exc:  # a handler may refuse its arguments itself
            outcome, detail = "usage", f"Usage: {exc}"
            await self._notice(ctx.room, ctx.username, detail)
        except CommandRefused as exc:  # ... or the caller (admins only, a locked gallery...)
            outcome, detail = "refused", str(exc)
            await self._notice(ctx.room, ctx.username, detail)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outcome, detail = "error", f"{type(exc).__name__}: {exc}"[:300]
            log.exception("command %s (plugin %s) failed for %s", entry.name, entry.plugin,
                          ctx.username)
            try:
                await ctx.reply_pm(f"Sorry, something went wrong with {self.prefix}{entry.name}.")
            except Exception:
                pass
        seconds = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.command_latency.observe(seconds)
        self._finish(ctx.event, entry.name, entry.name, ctx.username, words, ctx.via_pm,
                     outcome, detail, seconds)

    async def _notice(self, room: Any, user: str, text: str) -> None:
        if not self.notices.allow(user, self.clock.monotonic()):
            return
        try:
            await room.pm(user, text)
        except Exception as exc:
            log.debug("could not send refusal notice to %s: %s", user, exc)

    def _finish(self, event: Any, label: str, name: str, user: str, args: list[str],
                via_pm: bool, outcome: str, detail: str = "", seconds: float = 0.0) -> None:
        if self.metrics is not None:
            self.metrics.commands.labels(command=label, outcome=outcome).inc()
        done = CommandExecuted(room_id=event.room_id, channel=event.channel, command=name,
                               username=user, args=list(args), via_pm=via_pm, outcome=outcome,
                               detail=detail, duration_ms=seconds * 1000)
        # publish() only awaits for a full "block" subscriber; run it beside the hot path.
        self._track(asyncio.ensure_future(self.bus.publish(done)))

    def _track(self, task: asyncio.Future[Any]) -> None:
        self.running.add(task)
        task.add_done_callback(self.running.discard)

"""What a plugin is made of: the Plugin base class, its decorators, and its context.

A plugin is one package under ``daz/plugins/`` whose ``__init__.py`` defines one ``Plugin``
subclass. It declares what it reacts to with decorators; the plugin manager wires those
declarations to the bus, the command registry and timers, and isolates failures::

    class Seen(Plugin):
        name = "seen"

        @command("seen", usage="!seen <user>", description="When was someone last here")
        async def seen(self, ctx: CommandContext, user: str) -> None:
            await ctx.reply(...)

        @on(UserJoined)
        async def joined(self, event: UserJoined) -> None: ...

        @every(minutes=5)
        async def sweep(self) -> None: ...

Everything a plugin may touch comes through ``self.ctx`` (a ``PluginContext``); plugins never
import each other and talk through bus events or request/reply.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field

from daz.events import Event

if TYPE_CHECKING:  # pragma: no cover
    import aiohttp

    from daz.bus import Bus
    from daz.clock import Clock
    from daz.commands import CommandRegistry
    from daz.config import Config as AppConfig
    from daz.cytube.rooms import Rooms
    from daz.db.pool import Database
    from daz.journal import Journal, JournalStream
    from daz.metrics import Metrics

# A decorated method keeps its own type; the decorators only attach declarations to it.
HandlerFn = TypeVar("HandlerFn", bound=Callable[..., Any])


class PluginConfig(BaseModel):
    """Base for a plugin's config section. Unknown keys are kept (and warned about). Give
    every key a ``Field(description=...)``: docs/config.md is generated from it."""

    model_config = ConfigDict(extra="allow")
    enabled: bool = Field(True, description="Run this plugin (plugins that are off by default "
                                            "say so in their section)")


ConfigT = TypeVar("ConfigT", bound=PluginConfig)


@dataclass(frozen=True)
class CommandSpec:
    name: str
    aliases: tuple[str, ...] = ()
    min_rank: float = 0
    cooldown: float = 0.0  # seconds, per user, shared across aliases
    usage: str = ""
    description: str = ""
    admin_only: bool = False
    enabled: bool = True
    reply_to: str = "origin"  # "origin" (chat→chat, PM→PM), "pm" or "chat"
    pm_only: bool = False
    examples: tuple[Example, ...] = ()
    # Without a subcommand word the line gets the usage; else the handler runs (a plain command
    # line, or one whose first word names no subcommand).
    require_subcommand: bool = False


@dataclass(frozen=True)
class Example:
    """A line someone may type and the first answer it gets, shown by ``!help`` and run by the
    test suite (tests/integration/test_command_examples.py) against a real database.

    ``reply`` is the exact text, or a compiled ``re.Pattern`` the whole answer must match (for
    answers with numbers or times in them). The line is typed in chat by ``alice`` (rank 1), or
    in a PM with ``pm=True``; ``admin=True`` makes her a bot admin; ``present`` names others in
    the room when she types it.
    """

    line: str
    reply: str | re.Pattern[str]
    pm: bool = False
    admin: bool = False
    present: tuple[str, ...] = ()

    def matches(self, text: str) -> bool:
        if isinstance(self.reply, str):
            return text == self.reply
        return self.reply.fullmatch(text) is not None


@dataclass(frozen=True)
class SubcommandSpec:
    """``!group word args``: declared with ``@group.subcommand("word")`` under a command."""

    name: str
    aliases: tuple[str, ...] = ()
    usage: str = ""
    description: str = ""
    min_rank: float = 0
    admin_only: bool = False


@dataclass(frozen=True)
class OnSpec:
    topic: str
    priority: int = 0
    max_queue: int | None = None
    overflow: str = "drop_oldest"
    include_ignored: bool = False  # deliver replayed history / own echoes / [server] lines too
    # Event classes the handler acts on (exact match). Empty: every event on the topic.
    kinds: tuple[type, ...] = ()


@dataclass(frozen=True)
class EverySpec:
    seconds: float
    # Before the first run. None: one interval. A str names a config key (> 0); a callable gets
    # the plugin's validated config and returns seconds (>= 0: 0 runs the job at once).
    initial_delay: float | str | Callable[[Any], float] | None = None
    config: str | None = None  # the interval is this config key's value (resolved at start)
    enabled_by: str | None = None  # the job runs only when this config key is true


def command(name: str, *, aliases: tuple[str, ...] | list[str] = (), min_rank: float = 0,
            cooldown: float = 0.0, usage: str = "", description: str = "",
            admin_only: bool = False, enabled: bool = True, reply_to: str = "origin",
            pm_only: bool = False, examples: Iterable[Example | tuple[Any, ...]] = (),
            require_subcommand: bool = False) -> Callable[[Callable[..., Any]], Any]:
    """Declare a chat command. The handler is ``async def h(self, ctx, *args)``.

    Positional parameters after ``ctx`` are the command's arguments, converted from their
    annotations (``int``, ``float``, ``Literal["a", "b"]``, ``daz.commands.User``, ``str``);
    defaults make them optional and a ``*rest`` parameter takes the remainder. A line that does
    not fit gets the usage line, naming what was wrong. ``examples`` are ``Example``s or
    ``(line, reply)`` pairs. Subcommands are declared under the handler with
    ``@handler.subcommand("word")``.
    """
    if reply_to not in ("origin", "pm", "chat"):
        raise ValueError("reply_to must be 'origin', 'pm' or 'chat'")
    spec = CommandSpec(name=name.lower(), aliases=tuple(a.lower() for a in aliases),
                       min_rank=min_rank, cooldown=cooldown, usage=usage,
                       description=description, admin_only=admin_only, enabled=enabled,
                       reply_to=reply_to, pm_only=pm_only,
                       examples=tuple(e if isinstance(e, Example) else Example(*e)
                                      for e in examples),
                       require_subcommand=require_subcommand)

    # The marked handler is typed Any: it grows a ``subcommand`` decorator that class bodies
    # call (``@greeter.subcommand("on")``), which no Callable type has.
    def mark(fn: Callable[..., Any]) -> Any:
        subcommands: list[tuple[SubcommandSpec, Callable[..., Any]]] = []

        def subcommand(word: str, *, aliases: tuple[str, ...] | list[str] = (), usage: str = "",
                       description: str = "", min_rank: float = 0,
                       admin_only: bool = False) -> Callable[[HandlerFn], HandlerFn]:
            sub = SubcommandSpec(name=word.lower(), aliases=tuple(a.lower() for a in aliases),
                                 usage=usage, description=description, min_rank=min_rank,
                                 admin_only=admin_only)

            def mark_sub(sub_fn: HandlerFn) -> HandlerFn:
                subcommands.append((sub, sub_fn))
                return sub_fn

            return mark_sub

        marked: Any = fn
        marked.__daz_command__ = spec
        marked.__daz_subcommands__ = subcommands  # filled by the class body below the command
        marked.subcommand = subcommand
        return marked

    return mark


def on(what: type[Event] | str, *, priority: int = 0, max_queue: int | None = None,
       overflow: str = "drop_oldest", include_ignored: bool = False,
       kinds: tuple[type, ...] = ()) -> Callable[[HandlerFn], HandlerFn]:
    """Subscribe the method to an event class (its topic) or a topic pattern like ``cytube.*``.

    Chat lines and PMs nobody should react to (history replay, our own echoes, ``[server]``
    whispers, shadow-muted lines) are filtered out unless ``include_ignored=True``.
    ``kinds`` narrows a pattern to the event classes the handler acts on: the others are not
    even queued for it, which spares a wake-up per event on a busy channel.
    """
    topic = what if isinstance(what, str) else _topic_of(what)
    spec = OnSpec(topic=topic, priority=priority, max_queue=max_queue, overflow=overflow,
                  include_ignored=include_ignored, kinds=kinds)

    def mark(fn: HandlerFn) -> HandlerFn:
        marked: Any = fn
        marked.__daz_on__ = getattr(fn, "__daz_on__", ()) + (spec,)
        return fn

    return mark


def in_order(handlers: dict[type[Event], Callable[..., Any]], *, max_queue: int | None = None,
             overflow: str = "drop_oldest",
             include_ignored: bool = False) -> Callable[..., Any]:
    """One subscription for several event classes, each handled by its own method, all in the
    order they arrived in their room (a userlist is never handled after the addUser that
    followed it, nor a playlist edit before the media change that preceded it). Separate
    ``@on`` handlers would each have a lane of their own, with no order between them.

    In the class body, after the methods: ``event = in_order({UserJoined: _joined, ...})``.
    """
    table = dict(handlers)

    async def dispatch(self: Any, event: Any) -> None:
        handler = table.get(type(event))
        if handler is not None:
            await handler(self, event)

    return on("*", max_queue=max_queue, overflow=overflow, include_ignored=include_ignored,
              kinds=tuple(table))(dispatch)


def every(*, seconds: float = 0, minutes: float = 0, hours: float = 0,
          initial_delay: float | str | Callable[[Any], float] | None = None,
          config: str | None = None,
          enabled_by: str | None = None) -> Callable[[HandlerFn], HandlerFn]:
    """Run the method as a periodic job of the plugin, scheduled by the plugin manager.

    A job never overlaps itself: the next run starts one interval after the previous one
    ended. The first run is one interval after start, or ``initial_delay`` seconds. A run that
    raises is logged with its traceback and counted as an error of the plugin; one that raises
    a temporary database error (``daz.db.errors.is_transient``) is a warning line, not an
    error: the database is away, not the job. Either way the job runs again an interval later.
    At stop the manager cancels the jobs (a run in progress included) before teardown.

    ``config="key"`` takes the interval (seconds) from the plugin's validated config instead;
    ``initial_delay`` may name a config key too, or be ``lambda config: seconds``;
    ``enabled_by="key"`` runs the job only when that config key is true. The manager reads them
    when the plugin starts, and a missing key or an interval <= 0 stops start-up with an error
    naming the key.
    """
    interval = seconds + minutes * 60 + hours * 3600
    if config is not None:
        if interval:
            raise ValueError("every() takes either a fixed interval or config=, not both")
    elif interval <= 0:
        raise ValueError("every() needs a positive interval")

    def mark(fn: HandlerFn) -> HandlerFn:
        marked: Any = fn
        marked.__daz_every__ = EverySpec(seconds=interval, initial_delay=initial_delay,
                                         config=config, enabled_by=enabled_by)
        return fn

    return mark


def _config_parameter(cls: type) -> type[PluginConfig] | None:
    """X of ``class P(Plugin[X])`` (None when the class names no config model)."""
    for base in getattr(cls, "__orig_bases__", ()):
        origin = getattr(base, "__origin__", None)
        if isinstance(origin, type) and issubclass(origin, Plugin):
            (arg,) = base.__args__
            if isinstance(arg, type) and issubclass(arg, PluginConfig):
                return arg
            if isinstance(arg, type):
                raise TypeError(f"{cls.__qualname__} is Plugin[{arg.__name__}]: a plugin's config"
                                " model subclasses daz.plugins.base.PluginConfig")
    return None


def _topic_of(event_cls: type[Event]) -> str:
    name = getattr(event_cls, "name", "")
    from daz.cytube.events import CytubeEvent  # local: base must not import the connection

    if isinstance(event_cls, type) and issubclass(event_cls, CytubeEvent):
        return "cytube.event." + (name if name != "*" else "*")
    return event_cls.topic_name


@dataclass
class PluginContext:
    """The services one plugin may use. Built by the plugin manager, one per plugin.

    ``db``, ``metrics`` and ``app_config`` are always there: a plugin never checks them for
    None. A database that does not answer raises on use (``ConnectionError`` or asyncpg's
    errors, ``daz.db.errors.is_transient``), as it does in production while PostgreSQL is away.
    """

    name: str
    bus: Bus
    rooms: Rooms
    db: Database
    config: PluginConfig  # the plugin's validated config; typed per plugin as Plugin.config
    http: aiohttp.ClientSession | None
    logger: logging.Logger
    clock: Clock
    commands: CommandRegistry
    metrics: Metrics
    app_config: AppConfig  # the whole daz Config, read-only by convention
    data_dir: Any = None  # pathlib.Path
    # Where writes wait while the database is away (daz/journal.py); None without a data dir.
    journal: Journal | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def journal_stream(self, name: str) -> JournalStream | None:
        """The journal's stream ``name`` (daz/journal.py); None without a data dir."""
        return self.journal.stream(name) if self.journal is not None else None

    async def log(self, level: str, message: str, data: dict[str, Any] | None = None) -> None:
        """Record a line in daz_plugin_logs (and the process log). Never raises."""
        getattr(self.logger, level if level in ("debug", "info", "warning", "error") else "info")(
            message)
        try:
            await self.db.log(self.name, level, message, data)
        except Exception as exc:  # the log table being down must not break the caller
            self.logger.debug("could not write plugin log: %s", exc)


# The command system's handlers run ahead of others when several lanes have work ready, so a
# command is answered promptly on a busy channel.
COMMAND_PRIORITY = 100


class Plugin(Generic[ConfigT]):
    """Base class of every plugin. Subclasses set ``name`` and declare handlers.

    The config model is the type parameter: ``class Tell(Plugin[TellConfig])`` validates the
    ``plugins.tell`` section with ``TellConfig`` and types ``self.config`` as one. A plugin
    without a parameter gets the bare ``PluginConfig`` (just ``enabled``).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # Folder beside the plugin's module holding its numbered SQL files (001_baseline.sql,
    # 002_....sql), each applied once by db/migrate.py; no folder, no tables.
    migrations: ClassVar[str] = "migrations"
    # Before numbered migrations a plugin named one re-runnable file here; still applied, as the
    # plugin's first migration, for plugins written that way.
    schema: ClassVar[str | None] = None
    # The model the manager validates the section with: set from the type parameter.
    Config: ClassVar[type[PluginConfig]] = PluginConfig
    enabled_by_default: ClassVar[bool] = True
    # Plugins that must start (and have their tables) before this one; see plugins/registry.py.
    after: ClassVar[tuple[str, ...]] = ()
    # Lane priority of this plugin's handlers when several lanes have work ready.
    handler_priority: ClassVar[int] = 0
    # The key under which /health shows this plugin's ``health()`` details (None: it has none).
    health_section: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = _config_parameter(cls)
        if declared is None:
            return
        if "Config" in cls.__dict__ and cls.__dict__["Config"] is not declared:
            raise TypeError(f"{cls.__qualname__} is Plugin[{declared.__name__}] but sets Config ="
                            f" {cls.__dict__['Config'].__name__}: declare the model once, as the"
                            " type parameter")
        cls.Config = declared

    def __init__(self, ctx: PluginContext):
        self.ctx = ctx
        self.config: ConfigT = cast(ConfigT, ctx.config)
        self.log = ctx.logger

    async def setup(self) -> None:
        """Called once at start-up, after migrations and before rooms connect."""

    async def teardown(self) -> None:
        """Called once at shutdown, after rooms disconnected: flush what is buffered. It may be
        cut short (the stop has a time budget); ``save_for_next_start`` runs after it anyway."""

    async def save_for_next_start(self) -> None:
        """Put what this plugin holds in memory for the database (counts, held writes, queued
        rows) in its stream of the journal (``ctx.journal``, see ``daz/journal.py``), to be
        written at the next start; clear it from memory. Called at stop before teardown when
        the database does not answer, and after teardown in every case (then usually with
        nothing left). Must be quick, must not need the database, and may be called more than
        once."""

    def health_report(self) -> tuple[dict[str, Any], list[str]]:
        """For /health (when ``health_section`` is set): details, and the problems that make
        daz unhealthy now (each a line saying what is wrong). Quick; no database."""
        return {}, []

    # Retries ---------------------------------------------------------------------------

    # Operation name → name of the ``async def m(self, payload)`` method that runs it again.
    retry_operations: ClassVar[dict[str, str]] = {}

    async def retry_operation(self, operation: str, payload: dict[str, Any]) -> None:
        """Run an operation the retry queue hands back, by ``retry_operations``.

        The method raises to report another failure and returns normally when it succeeded. It
        must be idempotent: the queue guarantees at-least-once, the ``key`` given to
        ``defer_retry`` makes it once. An operation the plugin does not know raises
        NotImplementedError, which the retry queue dead-letters at once: retrying cannot help.
        """
        method = self.retry_operations.get(operation)
        if method is None:
            raise NotImplementedError(f"{self.name} has no retried operation {operation!r}")
        await getattr(self, method)(payload)

    @classmethod
    def runs_retried_operations(cls) -> bool:
        return bool(cls.retry_operations) or cls.retry_operation is not Plugin.retry_operation

    async def defer_retry(self, operation: str, payload: dict[str, Any], *, key: str,
                          error: str = "", max_retries: int | None = None,
                          priority: int = 0) -> bool:
        """Hand a failed operation to the retry plugin; False when no retry plugin runs.

        ``key`` is an idempotency key: the same key queued twice is one operation.
        """
        from daz.bus import NoResponder

        request = {"plugin": self.name, "operation": operation, "payload": payload, "key": key,
                   "error": error, "max_retries": max_retries, "priority": priority}
        try:
            await self.ctx.bus.request("retry.enqueue", request, timeout=10.0)
        except NoResponder:
            self.log.error("%s: no retry plugin running; %s %s is lost", self.name, operation, key)
            return False
        except Exception as exc:
            self.log.error("%s: could not queue retry of %s %s: %s", self.name, operation, key, exc)
            return False
        self.ctx.metrics.plugin_retries.labels(plugin=self.name).inc()
        return True

    # Web -------------------------------------------------------------------------------

    def web_routes(self) -> list[Any]:
        """aiohttp route definitions this plugin serves on daz's web server (default none)."""
        return []

    # Declarations, as the manager sees them --------------------------------------------

    @classmethod
    def declared_commands(cls) -> list[tuple[str, CommandSpec]]:
        return [(attr, spec) for attr, spec in cls._declared("__daz_command__")]

    @classmethod
    def declared_handlers(cls) -> list[tuple[str, OnSpec]]:
        out = []
        for attr in dir(cls):
            fn = getattr(cls, attr, None)
            for spec in getattr(fn, "__daz_on__", ()):
                out.append((attr, spec))
        return out

    @classmethod
    def declared_timers(cls) -> list[tuple[str, EverySpec]]:
        return [(attr, spec) for attr, spec in cls._declared("__daz_every__")]

    @classmethod
    def _declared(cls, marker: str) -> list[tuple[str, Any]]:
        out = []
        for attr in dir(cls):
            spec = getattr(getattr(cls, attr, None), marker, None)
            if spec is not None:
                out.append((attr, spec))
        return out

"""Loads plugins, wires their declarations, and keeps one plugin's failure its own.

* Which plugins run: every plugin the registry finds (``plugins/registry.py``: the packages in
  ``daz.plugins`` and the ``daz.plugins`` entry points), in the order their ``after``
  declarations give, whose config section does not say ``"enabled": false`` (a test may pass
  its own classes instead). A config section that names no known plugin is a warning.
* Config sections are validated before anything starts: a wrong type is a ``ConfigError``
  naming ``plugins.<name>.<key>``, and the bot does not start.
* ``setup()`` failing disables that plugin (logged and counted); the rest start.
* Handler and job (``@every``) exceptions are logged and counted per plugin; the next event or
  run goes ahead. A job failing on a temporary database error is a warning, not counted.
"""
from __future__ import annotations

import asyncio
import importlib
import logging
from dataclasses import dataclass, field
from typing import Any

from daz.bus import Bus
from daz.clock import Clock
from daz.commands import CommandDeclarationError, CommandRegistry
from daz.commands.dispatch import CommandDispatcher, command_settings
from daz.config import Config, ConfigError, validate_plugin_config
from daz.cytube.rooms import Rooms
from daz.db.errors import is_transient
from daz.db.pool import Database
from daz.journal import Journal, open_journal
from daz.logs import log_context
from daz.metrics import Metrics
from daz.plugins.base import EverySpec, OnSpec, Plugin, PluginContext
from daz.plugins.registry import available_plugins, plugin_class_in
from daz.stopping import StopBudget

__all__ = ["PluginManager", "available_plugins", "plugin_class"]

log = logging.getLogger(__name__)

@dataclass
class LoadedPlugin:
    name: str
    plugin: Plugin
    subscriptions: list = field(default_factory=list)
    jobs: dict[str, asyncio.Task] = field(default_factory=dict)  # method name → its @every task
    started: bool = False
    failed: str | None = None
    errors: int = 0


def plugin_class(name: str) -> type[Plugin]:
    """The Plugin subclass defined in ``daz.plugins.<name>``."""
    return plugin_class_in(importlib.import_module(f"daz.plugins.{name}"))


class PluginManager:
    """``db`` may be None until ``start``: the app validates the config (``select``) before
    its database connects. Plugins always get a database, and ``metrics`` always."""

    def __init__(self, *, config: Config, bus: Bus, rooms: Rooms, db: Database | None, http,
                 clock: Clock, metrics: Metrics, data_dir,
                 commands: CommandRegistry | None = None, journal: Journal | None = None):
        self.config = config
        self.bus = bus
        self.rooms = rooms
        self.db = db
        self.http = http
        self.clock = clock
        self.metrics = metrics
        self.data_dir = data_dir
        # The one journal of the data dir (daz/journal.py), shared by every plugin.
        self.journal = journal if journal is not None else open_journal(
            data_dir, max_bytes=config.core.journal_max_mb * 1024 * 1024, metrics=metrics)
        # Not `commands or ...`: an empty registry is falsy (it has __len__), and the app's
        # registry must be the one filled, or /help shows nothing.
        self.commands = commands if commands is not None else CommandRegistry()
        self.loaded: dict[str, LoadedPlugin] = {}
        self.dispatcher: CommandDispatcher | None = None

    # ------------------------------------------------------------------ selection

    def select(self, classes: dict[str, type[Plugin]] | None = None,
               only: list[str] | None = None) -> list[tuple[type[Plugin], Any]]:
        """Choose enabled plugins and validate their config; raises ConfigError on bad config."""
        classes = classes if classes is not None else available_plugins()
        self._warn_about_unknown_sections(classes)
        chosen = []
        problems = []
        try:
            command_settings(self.config)
        except ConfigError as exc:
            problems.append(str(exc))
        for name, cls in classes.items():
            if only is not None and name not in only:
                continue
            section = self.config.plugin_section(name)
            if "enabled" not in section and not cls.enabled_by_default:
                continue
            try:
                cfg = validate_plugin_config(name, cls.Config, section)
            except ConfigError as exc:
                problems.append(str(exc))
                continue
            if getattr(cfg, "enabled", True):
                chosen.append((cls, cfg))
        if problems:
            raise ConfigError("; ".join(problems))
        return chosen

    def _warn_about_unknown_sections(self, classes: dict[str, type[Plugin]]) -> None:
        known = set(classes) | set(available_plugins())
        for name in sorted(set(self.config.plugins) - known):
            log.warning("config: plugins.%s names no installed plugin, so it is ignored "
                        "(known plugins: %s)", name, ", ".join(sorted(known)))

    # ------------------------------------------------------------------ start / stop

    async def start(self, chosen: list[tuple[type[Plugin], Any]]) -> None:
        if self.db is None:
            raise RuntimeError("plugins start with a database: set PluginManager.db first (a"
                               " test without PostgreSQL gives one that never answers)")
        # Commands first, for all plugins, so a name clash stops start-up before anything runs.
        instances = []
        for cls, cfg in chosen:
            ctx = PluginContext(
                name=cls.name, bus=self.bus, rooms=self.rooms, db=self.db, config=cfg,
                http=self.http, logger=logging.getLogger(f"daz.plugins.{cls.name}"),
                clock=self.clock, commands=self.commands, metrics=self.metrics,
                data_dir=self.data_dir, journal=self.journal, app_config=self.config)
            plugin = cls(ctx)
            self._resolved_timers(plugin)  # a bad timer config key stops start-up here
            instances.append(plugin)
            for attr, spec in cls.declared_commands():
                try:
                    self.commands.register(cls.name, spec, getattr(plugin, attr))
                except CommandDeclarationError as exc:
                    raise ConfigError(str(exc)) from None
        for plugin in instances:
            await self._start_one(plugin)
        # Dispatch is core: commands run whichever plugins declared them.
        self.dispatcher = CommandDispatcher.from_config(
            self.config, bus=self.bus, rooms=self.rooms, registry=self.commands,
            clock=self.clock, metrics=self.metrics)
        self.dispatcher.start()

    async def _start_one(self, plugin: Plugin) -> None:
        loaded = LoadedPlugin(name=plugin.name, plugin=plugin)
        self.loaded[plugin.name] = loaded
        try:
            await plugin.setup()
        except Exception as exc:
            loaded.failed = f"setup failed: {exc!r}"[:300]
            log.exception("plugin %s failed to start; it is disabled, the others run on",
                          plugin.name)
            self.commands.unregister_plugin(plugin.name)
            self.metrics.count_handler_error(plugin.name)
            return
        for attr, spec in plugin.declared_handlers():
            loaded.subscriptions.append(self._subscribe(plugin, getattr(plugin, attr), spec))
        for attr, job in self._resolved_timers(plugin):
            loaded.jobs[attr] = asyncio.create_task(
                self._run_timer(loaded, attr, job), name=f"job:{plugin.name}.{attr}",
                context=log_context(plugin=plugin.name))
        if plugin.runs_retried_operations():
            self.bus.respond(f"retry.run.{plugin.name}", self._retry_runner(plugin),
                             owner=plugin.name)
        loaded.started = True
        log.debug("plugin %s started", plugin.name)  # app.py names them all in one line

    def _subscribe(self, plugin: Plugin, method, spec: OnSpec):
        priority = spec.priority or plugin.handler_priority
        # Ignored lines are left out by the bus, before they are queued for this plugin.
        return self.bus.subscribe(spec.topic, method, owner=plugin.name, priority=priority,
                                  max_queue=spec.max_queue, overflow=spec.overflow,
                                  kinds=spec.kinds or None, skip_ignored=not spec.include_ignored)

    @staticmethod
    def _resolved_timers(plugin: Plugin) -> list[tuple[str, EverySpec]]:
        """The plugin's jobs with config-named intervals and delays replaced by their values;
        jobs whose ``enabled_by`` key is false are left out."""
        resolved = []
        for attr, spec in plugin.declared_timers():
            if spec.enabled_by is not None and not _job_enabled(plugin, attr, spec.enabled_by):
                continue
            seconds, delay = spec.seconds, spec.initial_delay
            if spec.config is not None:
                seconds = _timer_seconds(plugin, attr, spec.config)
            if isinstance(delay, str):
                delay = _timer_seconds(plugin, attr, delay)
            elif callable(delay):
                delay = _computed_delay(plugin, attr, delay)
            resolved.append((attr, EverySpec(seconds=seconds, initial_delay=delay)))
        return resolved

    async def _run_timer(self, loaded: LoadedPlugin, attr: str, spec: EverySpec) -> None:
        method = getattr(loaded.plugin, attr)
        first = spec.initial_delay  # resolved: seconds, or None for one interval
        delay = float(first) if isinstance(first, (int, float)) else spec.seconds
        while True:
            # Sleeping after the run, not on a fixed beat: a run never overlaps the next. The
            # injected clock: a test's FakeClock runs jobs in virtual time.
            await self.clock.sleep(delay)
            delay = spec.seconds
            try:
                await method()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_transient(exc):  # the database is away; the job itself is fine
                    log.warning("plugin %s: job %s: the database did not answer (%s); it runs "
                                "again in %.0fs", loaded.name, attr,
                                f"{type(exc).__name__}: {exc}"[:200], spec.seconds)
                    continue
                loaded.errors += 1
                log.exception("plugin %s: job %s failed; it runs again in %.0fs",
                              loaded.name, attr, spec.seconds)
                self.metrics.count_handler_error(loaded.name)

    @staticmethod
    def _retry_runner(plugin: Plugin):
        async def run(request: dict) -> None:
            await plugin.retry_operation(request["operation"], request.get("payload") or {})
        return run

    async def stop(self, budget: StopBudget | None = None, *, database_up: bool = True) -> None:
        """Stop commands and timers, let queued events drain, tear down in reverse order, and
        save what is left in memory to disk, all within ``budget`` (see ``daz.stopping``). When
        the database does not answer, every plugin first saves what it holds (the event log
        first: it holds the most), so a stuck plugin or a SIGKILL after the grace period costs
        nothing."""
        budget = budget or StopBudget(15.0)
        if self.dispatcher is not None:
            await budget.within(self.dispatcher.stop(timeout=budget.seconds * 0.25),
                                "finishing running commands", at_most=2.0)
        jobs = [task for lp in self.loaded.values() for task in lp.jobs.values()]
        for task in jobs:
            task.cancel()
        if jobs:
            await budget.within(asyncio.gather(*jobs, return_exceptions=True),
                                "stopping the plugins' jobs", at_most=1.0)
        started = [lp for lp in self.loaded.values() if lp.started]
        if not database_up:
            log.warning("database not answering at stop: what plugins hold goes to disk first")
            await self._save_all(started, budget)
        await budget.within(self.bus.drain(timeout=budget.seconds * 0.4), "draining the bus")
        for loaded in reversed(list(self.loaded.values())):
            for sub in loaded.subscriptions:
                self.bus.unsubscribe(sub)
            self.bus.stop_responding(f"retry.run.{loaded.name}")
        for loaded in reversed(started):
            await budget.within(loaded.plugin.teardown(), f"plugin {loaded.name}: teardown",
                                at_most=max(1.0, budget.seconds * 0.25))
        await self._save_all(started, budget)

    @staticmethod
    async def _save_all(started: list[LoadedPlugin], budget: StopBudget) -> None:
        for loaded in started:
            await budget.within(loaded.plugin.save_for_next_start(),
                                f"plugin {loaded.name}: saving for the next start",
                                keep_reserve=False)

    # ------------------------------------------------------------------ introspection

    def jobs(self, name: str) -> dict[str, asyncio.Task]:
        """The running ``@every`` jobs of plugin ``name``, by method name."""
        loaded = self.loaded.get(name)
        return dict(loaded.jobs) if loaded is not None else {}

    def running(self) -> list[Plugin]:
        """The plugins that started, in start order."""
        return [lp.plugin for lp in self.loaded.values() if lp.started]

    def get(self, name: str) -> Plugin | None:
        loaded = self.loaded.get(name)
        return loaded.plugin if loaded and loaded.started else None

    def status(self) -> dict[str, dict]:
        out = {}
        for name, lp in self.loaded.items():
            handled = sum(s.handled for s in lp.subscriptions)
            errors = sum(s.errors for s in lp.subscriptions) + lp.errors
            out[name] = {"running": lp.started, "failed": lp.failed, "handled": handled,
                         "errors": errors}
        return out

    def web_routes(self) -> list:
        routes = []
        for lp in self.loaded.values():
            if lp.started:
                try:
                    routes.extend(lp.plugin.web_routes())
                except Exception:
                    log.exception("plugin %s: web_routes failed", lp.name)
        return routes


def _job_enabled(plugin: Plugin, attr: str, key: str) -> bool:
    value = getattr(plugin.config, key, None)
    if not isinstance(value, bool):
        raise ConfigError(f"plugins.{plugin.name}.{key}: job {attr!r} runs only when this key "
                          f"is true, and it is {'missing' if value is None else repr(value)}")
    return value


def _computed_delay(plugin: Plugin, attr: str, delay: Any) -> float:
    value = delay(plugin.config)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError(f"plugins.{plugin.name}: job {attr!r} computed a first delay of "
                          f"{value!r} seconds from the config; it must be 0 or more")
    return float(value)


def _timer_seconds(plugin: Plugin, attr: str, key: str) -> float:
    value = getattr(plugin.config, key, None)
    where = f"plugins.{plugin.name}.{key}"
    if value is None:
        raise ConfigError(f"{where}: timer {attr!r} reads its seconds from this key, "
                          "which the plugin's config does not have")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{where}: timer {attr!r} needs a positive number of seconds, "
                          f"got {value!r}")
    return float(value)

"""eventfilter: the command audit log, the owner's command switch, and event routing rules.

Command dispatch itself is core (``daz/commands/dispatch.py``); this plugin keeps what its Go
tables are for:

* the audit log: every ``CommandExecuted`` the dispatcher publishes is batched into
  ``daz_eventfilter_history`` (one row per attempt: ran, refused or failed);
* the owner's switch: the registry is mirrored into ``daz_eventfilter_commands`` at start-up; the
  ``enabled`` column is the owner's decision (``!command disable x``) and is read back, so it
  survives restarts and reaches other daz processes on the same database within
  ``refresh_seconds``. A switch made while the database is down holds at once and is saved
  through the retry queue (``defer_retry``) when the database is back;
* routing rules (``rules``/``routing_rules``, and rows of ``daz_eventfilter_rules``): matching
  CyTube events are forwarded to a plugin as ``plugin.<target>.forward`` (see rules.py).

Its section also still accepts the Go keys ``command_prefix``, ``default_cooldown`` and
``admin_users`` (and daz's ``notice_interval``, ``max_line_length``): the core reads them when
``core.commands`` / ``core.admin_users`` do not say otherwise. Config: ``plugins.eventfilter``
in docs/config.md.
"""
from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, model_validator

from daz.commands import CommandContext, CommandRefused, RegisteredCommand
from daz.commands.dispatch import command_prefix
from daz.events import CommandExecuted, PluginEvent
from daz.journal import JournalStream
from daz.plugins.base import Example, Plugin, PluginConfig, command, every, on
from daz.plugins.eventfilter.history import HistoryWriter
from daz.plugins.eventfilter.rules import Rule, RuleConfig, build_rule, targets_for

if TYPE_CHECKING:  # pragma: no cover
    from daz.bus import Subscription

UNSAVED_HISTORY = "eventfilter-history-unsaved"  # journal stream: audit rows a stop did not write


class EventFilterConfig(PluginConfig):
    # Read by the core's command dispatcher (core.commands wins where it sets a key).
    command_prefix: str = Field("!", min_length=1, max_length=5, description="Go key, read as "
                                "core.commands.prefix when that is not set")
    default_cooldown: float = Field(0.0, ge=0, description="Go key, read as core.commands."
                                    "default_cooldown when that is not set")
    admin_users: list[str] = Field(default_factory=list, description="Go key: bot admins, "
                                   "added to core.admin_users")
    notice_interval: float = Field(10.0, ge=0, description="Read as core.commands."
                                   "notice_interval when that is not set")
    max_line_length: int = Field(1000, ge=16, description="Read as core.commands."
                                 "max_line_length when that is not set")
    history: bool = Field(True, description="Keep the command audit log "
                                            "(daz_eventfilter_history)")
    history_flush_seconds: float = Field(2.0, gt=0, description="How often audit rows are "
                                         "written, in one batch")
    history_max_buffer: int = Field(50_000, ge=100, description="Audit rows held in memory "
                                    "while the database is away")
    refresh_seconds: float = Field(60.0, gt=0, description="How often the owner's command "
                                   "switches and the rules are read back from the database "
                                   "(other daz processes' changes arrive within this)")
    rules: list[RuleConfig] = Field(default_factory=list, description="Routing rules: "
                                    "matching events are forwarded to a plugin as "
                                    "plugin.<target>.forward")
    routing_rules: list[RuleConfig] = Field(default_factory=list, description="Go key, same "
                                            "meaning as rules (added to them)")

    @model_validator(mode="after")
    def _merge_go_rules(self) -> EventFilterConfig:
        if self.routing_rules:
            self.rules = [*self.rules, *self.routing_rules]
            self.routing_rules = []
        return self


class EventFilter(Plugin[EventFilterConfig]):
    name = "eventfilter"
    after = ("sql", "retry")
    description = "Command audit log, the owner's command switch, event routing rules"
    retry_operations: ClassVar[dict[str, str]] = {"save_enabled": "_retry_save_enabled"}

    async def setup(self) -> None:
        cfg = self.config
        self.prefix = command_prefix(self.ctx.app_config)
        self.history = HistoryWriter(self.ctx.db, max_buffer=cfg.history_max_buffer)
        unsaved = self._unsaved()
        if unsaved is not None:
            self.history.restore(unsaved.take_all(dict, owner="eventfilter"))
        self.unsaved: set[str] = set()  # switched while the database was down (retry queued)
        self.config_rules: list[Rule] = []
        for i, rc in enumerate(cfg.rules):
            rule = build_rule(f"config[{i}]", rc.event_type, rc.target_plugin, rc.conditions,
                              rc.priority) if rc.enabled else None
            if rule is not None:
                self.config_rules.append(rule)
        self.rules: list[Rule] = list(self.config_rules)
        self.forwarded = 0
        self._rules_sub: Subscription | None = None
        await self._mirror_commands()
        await self._load_db_rules()
        self._apply_rules(self.rules)

    async def teardown(self) -> None:
        if self._rules_sub is not None:
            self.ctx.bus.unsubscribe(self._rules_sub)
            self._rules_sub = None
        await self.history.flush()

    def _unsaved(self) -> JournalStream | None:
        return self.ctx.journal_stream(UNSAVED_HISTORY)

    async def save_for_next_start(self) -> None:
        chunks = self.history.take_unsaved()
        unsaved = self._unsaved()
        if not chunks or unsaved is None:
            return
        rows = sum(len(c["rows"]) for c in chunks)
        try:
            unsaved.write_now(chunks)
        except OSError as exc:
            self.log.error("eventfilter: %d command history row(s) the database did not take"
                           " are lost: %s cannot be written (%s)", rows, unsaved.path, exc)
            return
        self.log.warning("eventfilter: %d command history row(s) the database did not take"
                         " saved to %s, written at the next start", rows, unsaved.path)

    # ------------------------------------------------------------------ audit log

    @on(CommandExecuted)
    async def audit(self, done: CommandExecuted) -> None:
        if self.config.history:
            self.history.add(done.command, done.username, done.channel, done.args,
                             done.outcome == "ok", "" if done.outcome == "ok"
                             else f"{done.outcome}: {done.detail}".rstrip(": "))

    # ------------------------------------------------------------------ owner's switch

    @command("command", admin_only=True, usage="!command list | enable <name> | disable <name>",
             description="Switch commands off and on (kept across restarts); list the ones off",
             require_subcommand=True,
             examples=[Example("!command list", re.compile(r"All \d+ commands are on\."),
                               admin=True),
                       Example("!command disable command",
                               "That would lock everyone out of this switch; not doing it.",
                               admin=True)])
    async def manage(self, ctx: CommandContext) -> None:
        """Never runs: the command needs one of its subcommands."""

    @manage.subcommand("list", description="The commands switched off")
    async def manage_list(self, ctx: CommandContext) -> None:
        off = [f"{self.prefix}{c.name}" for c in self.ctx.commands.all() if not c.enabled]
        await ctx.reply("Switched off: " + ", ".join(off) if off
                        else f"All {len(self.ctx.commands)} commands are on.")

    @manage.subcommand("enable", description="Switch a command back on")
    async def manage_enable(self, ctx: CommandContext, name: str) -> None:
        await self._switch(ctx, name, True)

    @manage.subcommand("disable", description="Switch a command off")
    async def manage_disable(self, ctx: CommandContext, name: str) -> None:
        await self._switch(ctx, name, False)

    async def _switch(self, ctx: CommandContext, name: str, enable: bool) -> None:
        entry = self.ctx.commands.resolve(name.removeprefix(self.prefix))
        if entry is None:
            await ctx.reply(f"There is no command {name!r}.")
            return
        if entry.name == "command":
            raise CommandRefused("That would lock everyone out of this switch; not doing it.")
        entry.enabled = enable
        note = ""
        if not await self._save_enabled(entry):
            # Kept in force here, and written by the retry queue when the database is back.
            self.unsaved.add(entry.name)
            queued = await self.defer_retry(
                "save_enabled", {"command": entry.name},
                key=f"eventfilter:save_enabled:{entry.name}:{uuid.uuid4()}",
                error="database did not answer")
            note = (" (the database did not answer; it is saved when it is back)" if queued
                    else " (not saved: the database did not answer)")
        state = "on" if entry.enabled else "off"
        await ctx.reply(f"{self.prefix}{entry.name} is {state}.{note}")

    async def _retry_save_enabled(self, payload: dict) -> None:
        """Run by the retry queue: save a switch the database missed. It writes the switch as
        it is *now*, so several queued saves of one command, in any order, end the same."""
        entry = self.ctx.commands.resolve(str(payload.get("command", "")))
        if entry is None:
            return  # that command is gone: nothing left to save
        await self._write_enabled(entry)
        self.unsaved.discard(entry.name)

    # ------------------------------------------------------------------ database

    async def _mirror_commands(self) -> None:
        """Upsert every registered name; read back the owner's enabled flags."""
        rows = []
        for entry in self.ctx.commands.all():
            spec = entry.spec
            for word in (spec.name, *spec.aliases):
                rows.append((word, entry.plugin, word != spec.name,
                             None if word == spec.name else spec.name, int(spec.min_rank),
                             entry.enabled, spec.admin_only,
                             spec.description if word == spec.name else ""))
        try:
            async with self.ctx.db.acquire() as conn, conn.transaction():
                # enabled is only set on insert: after that it is the owner's decision.
                await conn.executemany(
                    "INSERT INTO daz_eventfilter_commands (command, plugin_name, is_alias,"
                    " primary_command, min_rank, enabled, admin_only, description)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                    " ON CONFLICT (command) DO UPDATE SET plugin_name = EXCLUDED.plugin_name,"
                    " is_alias = EXCLUDED.is_alias, primary_command = EXCLUDED.primary_command,"
                    " min_rank = EXCLUDED.min_rank, admin_only = EXCLUDED.admin_only,"
                    " description = EXCLUDED.description", rows)
        except Exception as exc:
            self.log.warning("eventfilter: could not mirror the command list (%s); commands run "
                             "with their declared enabled flags", exc)
            return
        await self._load_enabled()

    async def _load_enabled(self) -> None:
        try:
            rows = await self.ctx.db.fetch(
                "SELECT command, enabled FROM daz_eventfilter_commands WHERE is_alias IS NOT TRUE")
        except Exception as exc:
            self.log.warning("eventfilter: could not read enabled flags: %s", exc)
            return
        for row in rows:
            entry = self.ctx.commands.resolve(row["command"])
            if entry is not None and entry.name in self.unsaved:
                continue  # switched here while the database was away: ours is newer
            if entry is not None and entry.name == row["command"] and row["enabled"] is not None:
                entry.enabled = bool(row["enabled"]) or entry.name == "command"

    async def _save_enabled(self, entry: RegisteredCommand) -> bool:
        try:
            await self._write_enabled(entry)
        except Exception as exc:
            self.log.warning("eventfilter: could not save %s enabled=%s: %s", entry.name,
                             entry.enabled, exc)
            return False
        self.unsaved.discard(entry.name)
        return True

    async def _write_enabled(self, entry: RegisteredCommand) -> None:
        await self.ctx.db.execute(
            "UPDATE daz_eventfilter_commands SET enabled = $1"
            " WHERE command = $2 OR primary_command = $2", entry.enabled, entry.name)

    async def _load_db_rules(self) -> None:
        try:
            rows = await self.ctx.db.fetch(
                "SELECT id, event_type, target_plugin, conditions, priority"
                " FROM daz_eventfilter_rules WHERE enabled IS NOT FALSE")
        except Exception as exc:
            self.log.warning("eventfilter: could not read routing rules: %s", exc)
            return
        db_rules = [r for row in rows for r in [build_rule(
            f"db:{row['id']}", row["event_type"], row["target_plugin"], row["conditions"],
            row["priority"] or 0)] if r is not None]
        self.rules = [*self.config_rules, *db_rules]

    # ------------------------------------------------------------------ routing rules

    def _apply_rules(self, rules: list[Rule]) -> None:
        """Subscribe to CyTube events only while there is a rule (no cost when there is none)."""
        self.rules = sorted(rules, key=lambda r: -r.priority)
        if self.rules and self._rules_sub is None:
            self._rules_sub = self.ctx.bus.subscribe("cytube.event.*", self._route,
                                                     owner=self.name, priority=0)
        elif not self.rules and self._rules_sub is not None:
            self.ctx.bus.unsubscribe(self._rules_sub)
            self._rules_sub = None

    async def _route(self, event: Any) -> None:
        if getattr(event, "ignored", False):
            return
        for target, rule in targets_for(self.rules, event):
            data = {"event_type": event.topic, "rule": rule.source, "channel": event.channel,
                    "username": getattr(event, "username", None),
                    "text": getattr(event, "text", None), "event": event}
            await self.ctx.bus.publish(PluginEvent(name=f"plugin.{target}.forward",
                                                   room_id=event.room_id, data=data))
            self.forwarded += 1

    # ------------------------------------------------------------------ jobs

    @every(config="history_flush_seconds")
    async def flush_history(self) -> None:
        await self.history.flush()

    @every(config="refresh_seconds")
    async def refresh(self) -> None:
        """Another daz process on the same database may have switched a command or a rule."""
        await self._load_enabled()
        await self._load_db_rules()
        self._apply_rules(self.rules)

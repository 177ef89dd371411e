"""eventfilter: turns chat lines and PMs into command calls, and forwards events by rule.

For each ``!name args`` line (chat or PM, already HTML-unescaped, never replayed history or our
own echo) it resolves the command in the shared registry, then checks, in this order: enabled,
PM-only, admin-only, rank (from the room's user list, PMs too), argument count, per-user cooldown
(shared by aliases). A refusal gets one short PM saying why, at most one per user per
``notice_interval`` seconds; so does a handler's own refusal (``CommandRefused``), never public
chat. An unknown command gets no answer at all.

Who is a bot admin: a name listed in ``admin_users`` (core and this section) that is in the room
now, logged in to a registered account (rank >= 1), compared as CyTube compares names (ASCII
letters case-insensitively, anything else never matches). A guest (rank 0) who took an admin's
unregistered name is not an admin, nor is a look-alike name with a non-ASCII letter.

Commands run in their own task, so a slow command (a database lookup, an LLM call) never delays
the next line's dispatch; ``!ping`` is answered while ``!weather`` waits. Each attempt is counted
(``daz_commands_total``), timed, published as ``CommandExecuted`` and added to the batched audit
log (``daz_eventfilter_history``).

The registry is mirrored into ``daz_eventfilter_commands`` at start-up; the ``enabled`` column is
the owner's switch (``!command disable x``) and is read back, so it survives restarts. A switch
made while the database is down holds at once and is saved through the retry queue
(``defer_retry``) when the database is back.

Config keys: ``command_prefix`` ("!"), ``default_cooldown`` (0: commands set their own),
``admin_users`` (added to the core list), ``notice_interval`` (10 s between refusal PMs to one
user), ``max_line_length`` (1000), ``history`` (true), ``history_flush_seconds`` (2),
``history_max_buffer`` (50,000), ``refresh_seconds`` (60, re-read switches and rules),
``rules``/``routing_rules`` (see rules.py).
"""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from pydantic import Field, model_validator

from daz.commands import (CommandContext, CommandRefused, RegisteredCommand, UsageError,
                          parse_command)
from daz.cytube.events import ChatMessage, PrivateMessage
from daz.cytube.state import RoomState, name_key
from daz.events import CommandExecuted, PluginEvent
from daz.plugins.base import Plugin, PluginConfig, command, on
from daz.plugins.eventfilter.guard import Cooldowns, NoticeLimiter
from daz.plugins.eventfilter.history import HistoryWriter
from daz.plugins.eventfilter.rules import Rule, RuleConfig, build_rule, targets_for

UNKNOWN = "(unknown)"  # metric label for unknown names: user text must not become label values


class EventFilterConfig(PluginConfig):
    command_prefix: str = Field("!", min_length=1, max_length=5)
    # Cooldown for commands that declare none; 0 leaves them without one. (Go applied 5 s to
    # everything, aliases counted separately.)
    default_cooldown: float = Field(0.0, ge=0)
    admin_users: list[str] = Field(default_factory=list)
    notice_interval: float = Field(10.0, ge=0)
    max_line_length: int = Field(1000, ge=16)  # longer lines are not commands (Go: 512 bytes)
    history: bool = True
    history_flush_seconds: float = Field(2.0, gt=0)
    history_max_buffer: int = Field(50_000, ge=100)
    refresh_seconds: float = Field(60.0, gt=0)  # re-read enabled flags and rules from the table
    rules: list[RuleConfig] = Field(default_factory=list)
    routing_rules: list[RuleConfig] = Field(default_factory=list)  # the Go key, same meaning

    @model_validator(mode="after")
    def _merge_go_rules(self) -> "EventFilterConfig":
        if self.routing_rules:
            self.rules = [*self.rules, *self.routing_rules]
            self.routing_rules = []
        return self


class EventFilter(Plugin):
    name = "eventfilter"
    description = "Runs chat commands (ranks, cooldowns, audit log) and forwards events by rule"
    schema = "schema.sql"
    Config = EventFilterConfig
    retry_operations = {"save_enabled": "_retry_save_enabled"}

    async def setup(self) -> None:
        cfg = self.config
        self.prefix = cfg.command_prefix
        app = self.ctx.app_config
        core_admins = list(app.core.admin_users) if app is not None else []
        listed = [n for n in (*core_admins, *cfg.admin_users) if n]
        for name in listed:
            if not name.isascii():
                self.log.warning("admin_users: %r can never match a CyTube name (names are"
                                 " ASCII); ignored", name)
        self.admins = {name_key(n) for n in listed if n.isascii()}
        self.cooldowns = Cooldowns()
        self.notices = NoticeLimiter(cfg.notice_interval)
        self.history = HistoryWriter(self.ctx.db, max_buffer=cfg.history_max_buffer)
        self.running: set[asyncio.Task] = set()
        self.unsaved: set[str] = set()  # switched while the database was down (retry queued)
        self.config_rules: list[Rule] = []
        for i, rc in enumerate(cfg.rules):
            rule = build_rule(f"config[{i}]", rc.event_type, rc.target_plugin, rc.conditions,
                              rc.priority) if rc.enabled else None
            if rule is not None:
                self.config_rules.append(rule)
        self.rules: list[Rule] = list(self.config_rules)
        self.forwarded = 0
        self._rules_sub = None
        if self.ctx.db is not None:
            await self._mirror_commands()
            await self._load_db_rules()
        self._apply_rules(self.rules)
        self._loop = asyncio.create_task(self._background(), name="eventfilter:background")

    async def teardown(self) -> None:
        self._loop.cancel()
        await asyncio.gather(self._loop, return_exceptions=True)
        if self._rules_sub is not None:
            self.ctx.bus.unsubscribe(self._rules_sub)
            self._rules_sub = None
        if self.running:
            await asyncio.wait(self.running, timeout=10)
        await self.history.flush()

    # ------------------------------------------------------------------ dispatch

    @on(ChatMessage, priority=100)
    async def on_chat(self, event: ChatMessage) -> None:
        await self.dispatch(event, via_pm=False)

    @on(PrivateMessage, priority=100)
    async def on_pm(self, event: PrivateMessage) -> None:
        await self.dispatch(event, via_pm=True)

    async def dispatch(self, event: ChatMessage | PrivateMessage, *, via_pm: bool) -> None:
        text = event.text
        if not text.startswith(self.prefix) or len(text) > self.config.max_line_length:
            return  # the hot path: almost every line ends here
        if event.ignored or event.own or not event.username:
            return  # the @on wrapper drops these already; a command must never run twice
        room = self.ctx.rooms.get(event.room_id)
        if room is None or room.state.is_self(event.username):
            return
        parsed = parse_command(text, self.prefix)
        if parsed is None:
            return
        user = event.username
        entry = self.ctx.commands.resolve(parsed.name)
        if entry is None:
            self._finish(event, UNKNOWN, parsed.name, user, parsed.args, via_pm, "unknown")
            return
        is_admin = self.is_admin(room.state, user)
        # Rank comes from the user list (chat payloads carry none). Someone who can talk to us
        # is at least a guest, so an absent entry (a join we have not seen yet) counts as 0.
        rank = max(room.state.rank_of(user), 0)
        refusal = self._check(entry, parsed.args, user, rank, is_admin, via_pm)
        if refusal is not None:
            outcome, why = refusal
            self._finish(event, entry.name, entry.name, user, parsed.args, via_pm, outcome, why)
            await self._notice(room, user, why)
            return
        ctx = CommandContext(room=room, event=event, command=entry, invoked_as=parsed.name,
                             args=parsed.args, rest=parsed.rest, username=user, rank=rank,
                             is_admin=is_admin, via_pm=via_pm)
        task = asyncio.create_task(self._run(entry, ctx), name=f"command:{entry.name}")
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    def is_admin(self, state: RoomState, user: str) -> bool:
        """Listed, present, and logged in to a registered account (see the module docstring)."""
        if not user.isascii() or name_key(user) not in self.admins:
            return False
        present = state.user(user)
        return present is not None and present.rank >= 1

    def _check(self, entry: RegisteredCommand, args: list[str], user: str, rank: float,
               is_admin: bool, via_pm: bool) -> tuple[str, str] | None:
        """None when the command may run (and its cooldown is started), else (outcome, why)."""
        name = entry.name
        spec = entry.spec
        if not entry.enabled:
            return "disabled", f"{self.prefix}{name} is switched off."
        if spec.pm_only and not via_pm:
            return "pm_only", f"{self.prefix}{name} works only in a PM to me."
        if spec.admin_only and not is_admin:
            return "admin", f"{self.prefix}{name} is for bot admins only."
        if rank < spec.min_rank and not is_admin:
            return "rank", f"{self.prefix}{name} needs rank {spec.min_rank:g} (you have {rank:g})."
        try:
            entry.bind(args)
        except UsageError as exc:
            return "usage", f"Usage: {exc}"
        cooldown = spec.cooldown or self.config.default_cooldown
        if cooldown > 0 and not is_admin:
            now = self.ctx.clock.monotonic()
            left = self.cooldowns.remaining(user, name, now)
            if left > 0:
                return "cooldown", f"{self.prefix}{name}: wait {left:.0f}s." if left >= 1 \
                    else f"{self.prefix}{name}: wait a moment."
            # Started before the handler runs: a failing command still costs its cooldown,
            # otherwise an error path becomes a way to spam.
            self.cooldowns.start(user, name, cooldown, now)
        return None

    async def _run(self, entry: RegisteredCommand, ctx: CommandContext) -> None:
        started = time.perf_counter()
        outcome, detail = "ok", ""
        try:
            await entry.handler(ctx, *ctx.args)
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
            self.log.exception("command %s (plugin %s) failed for %s", entry.name, entry.plugin,
                               ctx.username)
            try:
                await ctx.reply_pm(f"Sorry, something went wrong with {self.prefix}{entry.name}.")
            except Exception:
                pass
        seconds = time.perf_counter() - started
        if self.ctx.metrics is not None:
            self.ctx.metrics.command_latency.observe(seconds)
        self._finish(ctx.event, entry.name, entry.name, ctx.username, ctx.args, ctx.via_pm,
                     outcome, detail, seconds)

    async def _notice(self, room: Any, user: str, text: str) -> None:
        if not self.notices.allow(user, self.ctx.clock.monotonic()):
            return
        try:
            await room.pm(user, text)
        except Exception as exc:
            self.log.debug("could not send refusal notice to %s: %s", user, exc)

    def _finish(self, event: Any, label: str, name: str, user: str, args: list[str],
                via_pm: bool, outcome: str, detail: str = "", seconds: float = 0.0) -> None:
        if self.ctx.metrics is not None:
            self.ctx.metrics.commands.labels(command=label, outcome=outcome).inc()
        if self.config.history:
            self.history.add(name, user, event.channel, args, outcome == "ok",
                             "" if outcome == "ok" else f"{outcome}: {detail}".rstrip(": "))
        done = CommandExecuted(room_id=event.room_id, channel=event.channel, command=name,
                               username=user, args=list(args), via_pm=via_pm, outcome=outcome,
                               detail=detail, duration_ms=seconds * 1000)
        # publish() only awaits for a full "block" subscriber; run it beside the hot path.
        task = asyncio.ensure_future(self.ctx.bus.publish(done))
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    # ------------------------------------------------------------------ owner's switch

    @command("command", admin_only=True, usage="!command list | enable <name> | disable <name>",
             description="Switch commands off and on (kept across restarts); list the ones off")
    async def manage(self, ctx: CommandContext, action: str, name: str = "") -> None:
        action = action.lower()
        if action == "list":
            off = [f"{self.prefix}{c.name}" for c in self.ctx.commands.all() if not c.enabled]
            await ctx.reply("Switched off: " + ", ".join(off) if off
                            else f"All {len(self.ctx.commands)} commands are on.")
            return
        if action not in ("enable", "disable") or not name:
            raise UsageError(ctx.command.spec.usage)
        entry = self.ctx.commands.resolve(name.removeprefix(self.prefix))
        if entry is None:
            await ctx.reply(f"There is no command {name!r}.")
            return
        if entry.name == "command":
            raise CommandRefused("That would lock everyone out of this switch; not doing it.")
        entry.enabled = action == "enable"
        note = ""
        if self.ctx.db is None:
            note = " (not saved: no database, it lasts until a restart)"
        elif not await self._save_enabled(entry):
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
        if entry is None or self.ctx.db is None:
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
            async with self.ctx.db.pool.acquire() as conn:
                async with conn.transaction():
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
        if self.ctx.db is None:
            return False
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

    # ------------------------------------------------------------------ background

    async def _background(self) -> None:
        last_refresh = time.monotonic()
        while True:
            await asyncio.sleep(self.config.history_flush_seconds)
            await self.history.flush()
            self.cooldowns.prune(self.ctx.clock.monotonic())
            if self.ctx.db is not None and time.monotonic() - last_refresh >= \
                    self.config.refresh_seconds:
                last_refresh = time.monotonic()
                # Another daz process on the same database may have switched a command.
                await self._load_enabled()
                await self._load_db_rules()
                self._apply_rules(self.rules)

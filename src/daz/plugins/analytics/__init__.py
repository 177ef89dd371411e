"""analytics: messages, active users, joins, media plays and commands per channel per hour and
per day, and per-user message counts with first/last seen; ``!mystats``.

Tables (Go Daz names): ``daz_analytics_hourly``, ``daz_analytics_daily``,
``daz_analytics_user_stats``; plus ``daz_analytics_hourly_users`` (who chatted in which hour)
and ``daz_analytics_flushes`` (ids of applied flushes).

How it counts (the Go bot's counts were not usable: docs/upgrading-from-go.md, "Counters"):

* Counting happens in memory as events arrive (chat lines, real joins, commands that ran, and
  plays announced by mediatracker), and is flushed every ``flush_seconds`` and at shutdown in
  one transaction (see ``store.py``). A failed flush is retried with the same flush id; it is
  applied exactly once. When the database does not take the counts at a stop, they are saved
  (flush ids included) to the journal (``<data_dir>/journal/analytics-unsaved.journal``) and
  written at the next start. A crash loses at most the last ``flush_seconds`` of counts, never
  adds any twice.
* "Active users" of an hour are the *distinct* people who chatted in it. The names are kept in
  the database per hour, so after a restart within an hour the new process's chatters are
  merged with those already stored, not added to a count (which would count a person twice).
  A day's active users are the distinct chatters of its hours; ``peak_users`` is the busiest
  hour; ``active_hours`` the hours with at least one line.
* Hours and days are UTC, by when daz received the event; a backfilled line (below) by when it
  was said.
* History backfill: the chat history CyTube replays at every join holds lines said while daz
  was away. A replayed line newer than every chat line of the channel daz has stored or counted
  (its CyTube ``time`` above the newest ``message_time`` in ``daz_core_events``, read at start,
  then kept in memory) is counted once, in the hour it was said. Older replayed lines were
  counted when they were said. Without that table (or an answer from the database) at start,
  replayed lines are not counted until a live line has set the mark.
* Never counted: replayed history already counted, daz's own lines and joins, ``[server]``
  whispers and shadow-muted lines (daz's name is checked too).
* The two helper tables are kept ``retention_days``: hourly chatter names are only needed while
  an hour or day can still receive counts, flush ids only while a flush can still be retried.

Config: ``plugins.analytics`` in docs/config.md.
"""
from __future__ import annotations

import asyncio
import collections
from typing import Any

from pydantic import Field

from daz.commands import CommandContext
from daz.cytube.events import ChatMessage, UserJoined
from daz.db.errors import is_transient
from daz.db.pool import table_exists
from daz.db.text import storable_name
from daz.events import CommandExecuted, PluginEvent
from daz.humanize import ago
from daz.journal import JournalStream
from daz.plugins.analytics import store
from daz.plugins.analytics.counters import Batch, ChatMark
from daz.plugins.base import Plugin, PluginConfig, command, every, in_order

PLAY_TOPIC = "plugin.mediatracker.play"  # announced by mediatracker for each actual play
UNSAVED_STREAM = "analytics-unsaved"  # journal stream: batches a stop could not write


class AnalyticsConfig(PluginConfig):
    flush_seconds: float = Field(30.0, gt=0, description="Seconds between two writes of the "
                                 "counts (a crash loses at most this much)")
    retention_days: int = Field(35, ge=2, description="Days the two helper tables (chatters "
                                "per hour, applied flush ids) are kept")


class Analytics(Plugin[AnalyticsConfig]):
    name = "analytics"
    after = ("sql", "mediatracker")  # its play counts follow the play records
    description = "Hourly and daily channel figures and per-user message counts; !mystats"

    async def setup(self) -> None:
        self.current = Batch()  # counting into
        self.pending: Batch | None = None  # taken for writing, not yet confirmed
        # Batches an earlier run saved at its stop, written (under their own flush ids) first.
        unsaved = self._unsaved()
        self.saved: collections.deque[Batch] = collections.deque(
            unsaved.take_all(Batch.from_json, owner="analytics") if unsaved is not None else ())
        if self.saved:
            self.log.info("analytics: %d batch(es) of counts saved at the last stop will be"
                          " written", len(self.saved))
        self.flushes = 0
        self.dropped_batches = 0
        self._last_cleanup: float | None = None
        self._lock = asyncio.Lock()
        if self.saved:
            try:
                await self.flush()
            except Exception as exc:  # kept; the flush timer tries again
                self.log.warning("analytics: saved counts not written yet: %s", exc)
        # channel → the newest chat line stored or counted (the backfill mark)
        self.chat_seen: dict[str, ChatMark] = {}
        await self._read_chat_marks()

    async def _read_chat_marks(self) -> None:
        try:
            async with self.ctx.db.acquire() as conn:
                if not await table_exists(conn, "daz_core_events"):
                    return
                # The configured channels: rooms are built later, as their leases are won.
                channels = {room.channel for room in self.ctx.app_config.enabled_rooms}
                for channel in sorted(channels):
                    self.chat_seen[channel] = await store.newest_chat(conn, channel)
        except Exception as exc:  # replayed lines are then not counted: never twice
            self.log.warning("analytics: could not read the newest stored chat line (%s);"
                             " history replayed at the next join is not counted", exc)

    async def teardown(self) -> None:
        # The manager has stopped the flush timer by now, so this last flush runs alone.
        try:
            await self.flush()
        except Exception as exc:  # save_for_next_start keeps them
            self.log.warning("analytics: final flush failed (%s); the counts are saved for the"
                             " next start", exc)

    def _unsaved(self) -> JournalStream | None:
        return self.ctx.journal_stream(UNSAVED_STREAM)

    async def save_for_next_start(self) -> None:
        batches = [b for b in (self.pending, *self.saved, self.current) if b]
        self.pending, self.current = None, Batch()
        self.saved.clear()
        if not batches:
            return
        unsaved = self._unsaved()
        if unsaved is None:
            self.log.error("analytics: %d batch(es) of counts not written and no data dir:"
                           " lost", len(batches))
            return
        try:
            unsaved.write_now(b.to_json() for b in batches)
        except OSError as exc:
            self.log.error("analytics: %d batch(es) of counts not written and %s cannot be"
                           " written (%s): lost", len(batches), unsaved.path, exc)
            return
        self.log.warning("analytics: database not answering at stop; %d batch(es) of counts"
                         " saved to %s, written at the next start", len(batches), unsaved.path)

    @every(config="flush_seconds")
    async def flush_timer(self) -> None:
        try:
            await self.flush()
        except Exception as exc:  # the batch stays pending and is retried as it is
            self.log.warning("analytics: flush failed, will retry: %s", exc)
            return
        # Not a timer of its own: cleaning up is only worth it once the counts are written.
        try:
            await self.cleanup_if_due()
        except Exception as exc:
            self.log.warning("analytics: cleanup of helper tables failed: %s", exc)

    async def cleanup_if_due(self) -> int:
        """Once a day: drop helper rows older than the retention; returns rows deleted."""
        now = self.ctx.clock.monotonic()
        if self._last_cleanup is not None and now - self._last_cleanup < 86400:
            return 0
        self._last_cleanup = now
        async with self.ctx.db.acquire() as conn:
            deleted = await store.cleanup(conn, self.config.retention_days)
        if deleted:
            self.log.info("analytics: removed %d helper rows older than %d days", deleted,
                          self.config.retention_days)
        return deleted

    async def flush(self) -> int:
        """Write the pending batch (a retry) and then the current one; returns batches applied."""
        applied = 0
        async with self._lock:
            while True:
                if self.pending is None:
                    if self.saved:
                        self.pending = self.saved.popleft()
                    elif self.current:
                        self.pending, self.current = self.current, Batch()
                    else:
                        return applied
                try:
                    async with self.ctx.db.acquire() as conn:
                        if await store.write(conn, self.pending):
                            applied += 1
                        else:
                            self.log.info("analytics: flush %s was already applied; skipped",
                                          self.pending.flush_id)
                except Exception as exc:
                    if is_transient(exc):
                        raise  # the database is away: kept, retried as it is
                    # The database refused the batch itself; retrying it would block every
                    # later count for good. Nothing of it was applied (one transaction).
                    self.log.error("analytics: batch %s refused by the database, its counts are "
                                   "dropped: %s", self.pending.flush_id, exc)
                    self.dropped_batches += 1
                self.pending = None
                self.flushes += 1

    # ------------------------------------------------------------------ counting

    # Ignored chat lines come too (include_ignored): a replayed one may be counted once, as
    # backfill (see _chat). Only chat lines can be ignored.

    async def _joined(self, event: UserJoined) -> None:
        if event.username and not self._is_self(event, event.username):
            self.current.join(event.channel, event.received_at)

    async def _command_ran(self, event: CommandExecuted) -> None:
        if event.outcome == "ok":
            self.current.command(event.channel, event.received_at)

    async def _plugin_event(self, event: PluginEvent) -> None:
        if event.name != PLAY_TOPIC:
            return
        channel = event.data.get("channel")
        started = event.data.get("started_at")
        if isinstance(channel, str) and channel:
            t = started if isinstance(started, (int, float)) else self.ctx.clock.time()
            self.current.play(channel, t)

    async def _chat_line(self, event: ChatMessage) -> None:
        self._chat(event)

    event = in_order({ChatMessage: _chat_line, UserJoined: _joined,
                      CommandExecuted: _command_ran, PluginEvent: _plugin_event},
                     max_queue=100_000, include_ignored=True)

    def _chat(self, event: ChatMessage) -> None:
        if event.own or event.whisper or event.shadow or not storable_name(event.username) \
                or self._is_self(event, event.username):
            return
        mark = self.chat_seen.get(event.channel)
        if not event.replayed:
            if event.time > 0:
                if mark is None:
                    mark = self.chat_seen[event.channel] = ChatMark()
                mark.take(event.time, event.username, event.msg)
            self.current.message(event.channel, event.username, event.received_at)
        elif mark is not None and event.time > 0 \
                and mark.take(event.time, event.username, event.msg):
            self.current.message(event.channel, event.username, event.said_at)

    def _is_self(self, event: Any, name: str) -> bool:
        room = self.ctx.rooms.get(event.room_id)
        return room is not None and room.state.is_self(name)

    # ------------------------------------------------------------------ !mystats

    @command("mystats", cooldown=10,
             description="Your own message count and first/last seen in this channel",
             examples=[("!mystats", "alice: 1 line in this channel (#1 here).")])
    async def mystats(self, ctx: CommandContext) -> None:
        channel = ctx.room.channel
        unsaved = 0
        for batch in (self.pending, *self.saved, self.current):
            if batch is not None:
                u = batch.users.get((channel, ctx.username))
                unsaved += u.messages if u else 0
        async with self.ctx.db.acquire() as conn:
            row = await store.user_row(conn, channel, ctx.username)
            total = (row["total_messages"] if row else 0) + unsaved
            place = await store.rank_of(conn, channel, total) if total else 0
        if not total:
            await ctx.reply(f"{ctx.username}: I have no chat lines from you in this channel yet.")
            return
        now = self.ctx.clock.now()
        text = f"{ctx.username}: {total} line{'s' if total != 1 else ''} in this channel"
        if place:
            text += f" (#{place} here)"
        if row is not None:
            text += f", first seen {ago(row['first_seen'], now)}"
        await ctx.reply(text + ".")

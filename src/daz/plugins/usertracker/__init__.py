"""usertracker: presence sessions per channel and user, a join/leave/rank history, and ``!seen``.

Tables (Go Daz names): ``daz_user_tracker_sessions`` (one row per stay in a channel),
``daz_user_tracker_history`` (join, leave, rank, afk/back rows).

How presence is kept, and how it differs from Go Daz (reference daz-go-plugins §1, §10.1):

* A session opens on a real join (``addUser``) and closes on ``userLeave``. The database allows
  at most one active session per channel and user (a partial unique index), so two events or two
  daz processes racing can never leave two open sessions.
* The full user list (on join, after a reconnect or a restart, and when our rank crosses 2)
  reconciles: people still present keep their open session and its real ``joined_at``; people
  with none get one opened *now* (flagged observed-at-join where the schema has the column, and
  a ``join`` history row with ``from_userlist``); open sessions of people no longer there are
  closed. Old sessions are never revived.
* Being idle or AFK never ends a session (Go marked idle lurkers as gone after 30 minutes).
* ``last_activity`` is the last chat line (batched: one UPDATE per channel every
  ``activity_flush_seconds``, never a round-trip per line), or the join/leave time.
* **daz's own name is tracked like anyone's**, and its session doubles as the record of when
  daz was watching: its ``last_activity`` is refreshed with every flush while it is in the
  room, and its session is closed when the room disconnects or daz stops. When a later user
  list shows someone gone, their ``left_at`` is the last moment daz was watching (not the time
  of the resync, which may be hours later), so ``!seen`` does not claim "just now".

All of a room's events are handled by one subscription, so a quick leave-and-rejoin, a rank
change and a disconnect are applied in the order they happened.
"""
from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from daz.commands import CommandContext
from daz.cytube.events import (AfkChanged, ChatMessage, UserJoined, UserLeft, UserList,
                               UserRankChanged)
from daz.events import RoomDisconnected
from daz.plugins.base import Plugin, PluginConfig, command, on
from daz.plugins.usertracker import sessions
from daz.plugins.usertracker.humanize import ago, clean_username, stamp


class UserTrackerConfig(PluginConfig):
    activity_flush_seconds: float = Field(5.0, gt=0)
    # A second join of the same user within this window is the same join (another daz process,
    # or a repeated frame), not a rejoin.
    join_dedupe_seconds: float = Field(2.0, ge=0)


class UserTracker(Plugin):
    name = "usertracker"
    description = "Who is in each channel, since when; join/leave history; !seen"
    schema = "schema.sql"
    Config = UserTrackerConfig

    async def setup(self) -> None:
        # channel → lower-cased name → (name as typed, epoch of the last line)
        self.activity: dict[str, dict[str, tuple[str, float]]] = {}
        self.observed_column: str | None = None
        self.afk_column: str | None = None
        if self.ctx.db is not None:
            async with self.ctx.db.pool.acquire() as conn:
                cols = await sessions.optional_columns(conn)
            self.observed_column = next(
                (c for c in ("observed_at_join", "observed", "joined_at_observed") if c in cols),
                None)
            self.afk_column = next((c for c in ("is_afk", "afk") if c in cols), None)
        self._flush_lock = asyncio.Lock()
        self._loop = asyncio.create_task(self._flush_loop(), name="usertracker:flush")

    async def teardown(self) -> None:
        self._loop.cancel()
        await asyncio.gather(self._loop, return_exceptions=True)
        await self.flush()
        # daz is leaving every room: close its own sessions, which marks until when it watched.
        now = self.ctx.clock.time()
        for room in self.ctx.rooms:
            await self._close_own(room.channel, room.state.bot_name, now, "bot_stopped")

    # ------------------------------------------------------------------ events

    @on("*", max_queue=100_000, kinds="_handlers")
    async def event(self, event: Any) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            await handler(self, event)

    async def _joined(self, ev: UserJoined) -> None:
        if ev.username and self.ctx.db is not None:
            async with self.ctx.db.pool.acquire() as conn:
                await sessions.join(conn, ev.channel, ev.username, ev.user.rank,
                                    ev.received_at, self.config.join_dedupe_seconds)

    async def _left(self, ev: UserLeft) -> None:
        if not ev.username:
            return
        self.activity.get(ev.channel, {}).pop(ev.username.lower(), None)
        if self.ctx.db is not None:
            async with self.ctx.db.pool.acquire() as conn:
                await sessions.leave(conn, ev.channel, ev.username, ev.received_at)

    async def _userlist(self, ev: UserList) -> None:
        if self.ctx.db is None:
            return
        room = self.ctx.rooms.get(ev.room_id)
        bot = room.state.bot_name if room is not None else ""
        users = [(u.name, u.rank) for u in ev.users if u.name]
        async with self.ctx.db.pool.acquire() as conn:
            opened, closed = await sessions.reconcile(conn, ev.channel, users, ev.received_at,
                                                      bot, self.observed_column)
        if opened or closed:
            self.log.info("usertracker %s: resync opened %d, closed %d sessions", ev.channel,
                          len(opened), len(closed))

    async def _rank(self, ev: UserRankChanged) -> None:
        if ev.username and self.ctx.db is not None:
            async with self.ctx.db.pool.acquire() as conn:
                await sessions.rank_changed(conn, ev.channel, ev.username, ev.rank,
                                            ev.received_at)

    async def _afk(self, ev: AfkChanged) -> None:
        if ev.username and self.ctx.db is not None:
            async with self.ctx.db.pool.acquire() as conn:
                await sessions.afk_changed(conn, ev.channel, ev.username, ev.afk,
                                           ev.received_at, self.afk_column)

    async def _chat(self, ev: ChatMessage) -> None:
        # A NUL or an endless name (only a broken server sends one) would make every later
        # activity write of the channel fail: it is not batched.
        if not ev.username or len(ev.username) > 255 or "\x00" in ev.username:
            return
        pending = self.activity.setdefault(ev.channel, {})
        key = ev.username.lower()
        old = pending.get(key)
        if old is None or old[1] < ev.received_at:
            pending[key] = (ev.username, ev.received_at)

    async def _disconnected(self, ev: RoomDisconnected) -> None:
        # Everyone else keeps their session: the next user list settles who is still there.
        await self.flush()
        room = self.ctx.rooms.get(ev.room_id)
        if room is not None:
            await self._close_own(ev.channel, room.state.bot_name, ev.received_at,
                                  "bot_disconnected")

    _handlers = {
        UserJoined: _joined, UserLeft: _left, UserList: _userlist, UserRankChanged: _rank,
        AfkChanged: _afk, ChatMessage: _chat, RoomDisconnected: _disconnected,
    }

    async def _close_own(self, channel: str, bot_name: str, t: float, reason: str) -> None:
        if not bot_name or self.ctx.db is None:
            return
        try:
            async with self.ctx.db.pool.acquire() as conn:
                await sessions.leave(conn, channel, bot_name, t, reason)
        except Exception as exc:  # shutting down with the database gone: the next resync fixes it
            self.log.warning("usertracker: could not close daz's own session in %s: %s",
                             channel, exc)

    # ------------------------------------------------------------------ batched activity

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.activity_flush_seconds)
            try:
                await self.flush()
            except Exception as exc:  # kept for the next pass
                self.log.warning("usertracker: activity flush failed: %s", exc)

    def _heartbeat(self) -> None:
        """daz's own presence counts as activity: it is what later bounds others' left_at."""
        now = self.ctx.clock.time()
        for room in self.ctx.rooms:
            bot = room.state.bot_name
            if bot and getattr(room, "connected", False) and room.state.is_present(bot):
                self.activity.setdefault(room.channel, {})[bot.lower()] = (bot, now)

    async def flush(self) -> int:
        """Write the batched last-chat times, one statement per channel; returns rows touched."""
        async with self._flush_lock:
            self._heartbeat()
            if self.ctx.db is None:
                self.activity.clear()
                return 0
            batch, self.activity = self.activity, {}
            touched = 0
            try:
                async with self.ctx.db.pool.acquire() as conn:
                    for channel in list(batch):
                        touched += await sessions.touch(conn, channel, batch[channel])
                        del batch[channel]
            finally:
                for channel, pending in batch.items():  # not written: merge back, newest wins
                    merged = self.activity.setdefault(channel, {})
                    for key, value in pending.items():
                        if key not in merged or merged[key][1] < value[1]:
                            merged[key] = value
            return touched

    # ------------------------------------------------------------------ !seen

    @command("seen", aliases=("lastseen",), cooldown=3, usage="!seen <user>",
             description="When someone was last in this channel")
    async def seen(self, ctx: CommandContext, user: str) -> None:
        name = clean_username(user)
        if name is None:
            await ctx.reply("That doesn't look like a CyTube username (1-20 letters, digits,"
                            " - or _).")
            return
        state = ctx.room.state
        if state.is_self(name):
            await ctx.reply("I'm right here.")
            return
        if name.lower() == ctx.username.lower():
            await ctx.reply("You're right here.")
            return
        row = None
        if self.ctx.db is not None:
            async with self.ctx.db.pool.acquire() as conn:
                row = await sessions.lookup(conn, ctx.room.channel, name)
        now = self.ctx.clock.now()
        present = state.user(name)
        if present is not None:
            shown = present.name
            if row is not None and row["is_active"]:
                await ctx.reply(f"{shown} is here now (joined {ago(row['joined_at'], now)}).")
            else:
                await ctx.reply(f"{shown} is here now.")
            return
        if row is None:
            await ctx.reply(f"I haven't seen {name} in this channel.")
            return
        last = row["left_at"] or row["last_activity"]
        if row["last_activity"] is not None and row["last_activity"] > last:
            last = row["last_activity"]
        await ctx.reply(f"{row['username']} was last seen {ago(last, now)} ({stamp(last)}).")

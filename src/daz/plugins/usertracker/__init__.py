"""usertracker: presence sessions per channel and user, a join/leave/rank history, and ``!seen``.

Tables (Go Daz names): ``daz_user_tracker_sessions`` (one row per stay in a channel),
``daz_user_tracker_history`` (join, leave, rank, afk/back rows).

How presence is kept (how the Go bot kept it: docs/upgrading-from-go.md, "Presence"):

* A session opens on a real join (``addUser``) and closes on ``userLeave``. The database allows
  at most one active session per channel and user (a partial unique index), so two events or two
  daz processes racing can never leave two open sessions.
* The full user list (on join, after a reconnect or a restart, and when our rank crosses 2)
  reconciles: people still present keep their open session and its real ``joined_at``; people
  with none get one opened *now* (flagged observed-at-join where the schema has the column, and
  a ``join`` history row with ``from_userlist``); open sessions of people no longer there are
  closed. Old sessions are never revived.
* Being idle or AFK never ends a session.
* ``last_activity`` is the last chat line (batched: one UPDATE per channel every
  ``activity_flush_seconds``, never a round-trip per line), or the join/leave time.
* **daz's own name is tracked like anyone's**, and its session doubles as the record of when
  daz was watching: its ``last_activity`` is refreshed with every flush while it is in the
  room, and its session is closed when the room disconnects or daz stops. When a later user
  list shows someone gone, their ``left_at`` is the last moment daz was watching (not the time
  of the resync, which may be hours later), so ``!seen`` does not claim "just now". When that
  moment is unknown (a database the Go bot wrote, a new bot name, an anonymous bot's first
  start), it is their own last sign of life (``last_activity``).

All of a room's events are handled by one subscription, so a quick leave-and-rejoin, a rank
change and a disconnect are applied in the order they happened.

**When the database goes away** (``daz.db.held``): a join, leave, rank, AFK, user-list or
own-session write that fails on the connection is not lost and does not fail the handler. The
channel's writes are held in event order (at most ``held_writes_limit``; each one in the
journal, ``daz.journal``, before the handler returns) and applied
in that order, with their original times, once the database answers (retried every
``held_retry_seconds`` at most). Replaying the events, rather than rebuilding sessions from the
room's present user list, is what keeps *both* tables right: the history gets every join and
leave that happened during the outage, and the sessions end exactly as the room is (someone who
came and went has a closed session with real times, not none). Every write is idempotent
(``sessions.py``), so one that reached COMMIT before the connection died is harmless to apply
again. Chat activity of a holding channel waits too, so it never lands before the joins it
belongs to. Only past the limit is something lost (logged as an error); the next user list
repairs the sessions then. What is still held at shutdown (or at a crash) stays in the journal
(``<data_dir>/journal/usertracker-held.journal``) and is applied first at the next start: the
journal keeps the order, the retry queue would not.

Config: ``plugins.usertracker`` in docs/config.md.
"""
from __future__ import annotations

import asyncio

from pydantic import Field

from daz.commands import CommandContext
from daz.cytube.events import (
    AfkChanged,
    ChatMessage,
    UserJoined,
    UserLeft,
    UserList,
    UserRankChanged,
)
from daz.db.held import HeldWrites, HeldWritesConfig
from daz.db.text import storable_name
from daz.events import RoomConnected, RoomDisconnected
from daz.humanize import ago, clean_username, stamp
from daz.plugins.base import Example, Plugin, PluginConfig, command, every, in_order
from daz.plugins.usertracker import sessions


class UserTrackerConfig(PluginConfig, HeldWritesConfig):
    activity_flush_seconds: float = Field(5.0, gt=0, description="How often last_activity "
                                          "(the last chat line) is written, one UPDATE per "
                                          "channel")
    join_dedupe_seconds: float = Field(2.0, ge=0, description="A second join of the same user "
                                       "within this window is the same join (another daz "
                                       "process, or a repeated frame), not a rejoin")


class UserTracker(Plugin[UserTrackerConfig]):
    name = "usertracker"
    after = ("sql",)
    description = "Who is in each channel, since when; join/leave history; !seen"

    async def setup(self) -> None:
        # channel → lower-cased name → (name as typed, epoch of the last line)
        self.activity: dict[str, dict[str, tuple[str, float]]] = {}
        self.observed_column: str | None = None
        self.afk_column: str | None = None
        async with self.ctx.db.acquire() as conn:
            cols = await sessions.optional_columns(conn)
        self.observed_column = next(
            (c for c in ("observed_at_join", "observed", "joined_at_observed") if c in cols),
            None)
        self.afk_column = next((c for c in ("is_afk", "afk") if c in cols), None)
        self._flush_lock = asyncio.Lock()
        # channel → when the current connection came up / when this process last saw it drop:
        # what bounds the left_at of people a later user list shows gone (sessions.reconcile).
        self._watching_since: dict[str, float] = {}
        self._watched_until: dict[str, float] = {}
        self.held = HeldWrites.for_plugin(self, self._apply)
        await self.held.restore()

    async def teardown(self) -> None:
        await self._flush_logged()
        # daz is leaving every room: close its own sessions, which marks until when it watched.
        now = self.ctx.clock.time()
        for room in self.ctx.rooms:
            await self._close_own(room.channel, room.state.bot_name, now, "bot_stopped")
        await self.held.shutdown()

    async def save_for_next_start(self) -> None:
        await self.held.save_now()
        # Last-chat times the database has not taken are saved behind the joins they belong
        # to, so the next start applies them in that order.
        now = self.ctx.clock.time()
        touches = [(channel, {"op": "touch", "channel": channel, "t": now,
                              "users": {key: list(value) for key, value in users.items()}})
                   for channel, users in self.activity.items() if users]
        self.activity = {}
        await self.held.save(touches)

    # ------------------------------------------------------------------ events

    # Each write is a JSON-able operation with the event's own time, so that it can wait in
    # order while the database is away (and be saved at shutdown); ``_apply`` runs it.

    async def _write(self, channel: str, op: dict) -> None:
        await self.held.submit(channel, op)

    async def _joined(self, ev: UserJoined) -> None:
        if ev.username:
            await self._write(ev.channel, {"op": "join", "channel": ev.channel,
                                           "user": ev.username, "rank": ev.user.rank,
                                           "t": ev.received_at})

    async def _left(self, ev: UserLeft) -> None:
        if not ev.username:
            return
        self.activity.get(ev.channel, {}).pop(ev.username.lower(), None)
        await self._write(ev.channel, {"op": "leave", "channel": ev.channel,
                                       "user": ev.username, "t": ev.received_at})

    async def _userlist(self, ev: UserList) -> None:
        room = self.ctx.rooms.get(ev.room_id)
        bot = room.state.bot_name if room is not None else ""
        users = [[u.name, u.rank] for u in ev.users if u.name]
        await self._write(ev.channel, {"op": "resync", "channel": ev.channel, "users": users,
                                       "t": ev.received_at, "bot": bot,
                                       "since": self._watching_since.get(ev.channel),
                                       "until": self._watched_until.get(ev.channel)})

    async def _rank(self, ev: UserRankChanged) -> None:
        if ev.username:
            await self._write(ev.channel, {"op": "rank", "channel": ev.channel,
                                           "user": ev.username, "rank": ev.rank,
                                           "t": ev.received_at})

    async def _afk(self, ev: AfkChanged) -> None:
        if ev.username:
            await self._write(ev.channel, {"op": "afk", "channel": ev.channel,
                                           "user": ev.username, "afk": bool(ev.afk),
                                           "t": ev.received_at})

    async def _apply(self, conn, op: dict) -> None:
        kind, channel, t = op["op"], op["channel"], op["t"]
        if kind == "join":
            await sessions.join(conn, channel, op["user"], op["rank"], t,
                                self.config.join_dedupe_seconds)
        elif kind == "leave":
            await sessions.leave(conn, channel, op["user"], t, op.get("reason"))
        elif kind == "resync":
            users = [(name, rank) for name, rank in op["users"]]
            opened, closed = await sessions.reconcile(
                conn, channel, users, t, op["bot"], self.observed_column,
                watched_until=op.get("until"), watching_since=op.get("since"))
            if opened or closed:
                self.log.info("usertracker %s: resync opened %d, closed %d sessions", channel,
                              len(opened), len(closed))
        elif kind == "rank":
            await sessions.rank_changed(conn, channel, op["user"], op["rank"], t)
        elif kind == "afk":
            await sessions.afk_changed(conn, channel, op["user"], op["afk"], t, self.afk_column)
        elif kind == "touch":  # batched last-chat times saved at a stop
            await sessions.touch(conn, {channel: {key: (name, when) for key, (name, when)
                                                  in op["users"].items()}})
        else:
            raise ValueError(f"unknown usertracker operation {kind!r}")

    async def _chat(self, ev: ChatMessage) -> None:
        # A NUL, a lone surrogate or an endless name (only a broken server sends one) would
        # make every later activity write of the channel fail: it is not batched.
        if not storable_name(ev.username):
            return
        pending = self.activity.setdefault(ev.channel, {})
        key = ev.username.lower()
        old = pending.get(key)
        if old is None or old[1] < ev.received_at:
            pending[key] = (ev.username, ev.received_at)

    async def _connected(self, ev: RoomConnected) -> None:
        self._watching_since[ev.channel] = ev.received_at

    async def _disconnected(self, ev: RoomDisconnected) -> None:
        # Everyone else keeps their session: the next user list settles who is still there.
        self._watched_until[ev.channel] = ev.received_at
        await self._flush_logged()
        room = self.ctx.rooms.get(ev.room_id)
        if room is not None:
            await self._close_own(ev.channel, room.state.bot_name, ev.received_at,
                                  "bot_disconnected")

    event = in_order({
        UserJoined: _joined, UserLeft: _left, UserList: _userlist, UserRankChanged: _rank,
        AfkChanged: _afk, ChatMessage: _chat, RoomConnected: _connected,
        RoomDisconnected: _disconnected,
    }, max_queue=100_000)

    async def _close_own(self, channel: str, bot_name: str, t: float, reason: str) -> None:
        if bot_name:
            await self._write(channel, {"op": "leave", "channel": channel, "user": bot_name,
                                        "t": t, "reason": reason})

    # ------------------------------------------------------------------ batched activity

    @every(config="activity_flush_seconds")
    async def flush_activity(self) -> None:
        await self.flush()  # what it could not write is kept for the next run

    async def _flush_logged(self) -> None:
        try:
            await self.flush()
        except Exception as exc:  # kept for the next pass
            self.log.warning("usertracker: activity flush failed (kept for the next one): %s",
                             exc)

    def _heartbeat(self) -> None:
        """daz's own presence counts as activity: it is what later bounds others' left_at."""
        now = self.ctx.clock.time()
        for room in self.ctx.rooms:
            bot = room.state.bot_name
            if bot and getattr(room, "connected", False) and room.state.is_present(bot):
                self.activity.setdefault(room.channel, {})[bot.lower()] = (bot, now)

    async def flush(self) -> int:
        """Write the batched last-chat times in one statement; returns rows touched."""
        async with self._flush_lock:
            self._heartbeat()
            batch, self.activity = self.activity, {}
            touched = 0
            try:
                # A channel whose joins are held waits too: its activity must not land first
                # (on no session, or on the one its held leave is about to close).
                ready = {c: batch[c] for c in batch if not self.held.holding(c)}
                if ready:
                    async with self.ctx.db.acquire() as conn:
                        touched = await sessions.touch(conn, ready)
                    for channel in ready:
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
             description="When someone was last in this channel",
             examples=[Example("!seen bob", "bob is here now.", present=("bob",)),
                       ("!seen nobody", "I haven't seen nobody in this channel.")])
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
        async with self.ctx.db.acquire() as conn:
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

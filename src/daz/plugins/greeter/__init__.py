"""greeter: say hello to people who actually arrive, not to everyone the bot happens to see.

Who is greeted: a user whose ``addUser`` arrives after the room's join burst (``RoomJoined``)
and who is not the bot. Never greeted: the join-time user list; anyone during
``reconnect_grace_seconds`` after daz's own reconnect; someone back within
``rejoin_window_minutes`` of leaving (a flap; also when daz itself was disconnected meanwhile,
and, through ``daz_user_tracker_sessions`` when it exists, across a daz restart); users who
opted out (``!greeter off``); users greeted in this channel within ``cooldown_minutes``; any
join within ``channel_cooldown_seconds`` of the channel's last greeting; and a random
``skip_probability`` share of the rest (drawn per join).

The greeting goes out after a random ``delay_min_seconds``-``delay_max_seconds`` pause, only if
the user is still in the room (the live user list: idle people count as present). First-time
visitors get a ``first`` greeting: nobody of that name was ever greeted in this channel, and the
usertracker's sessions (when its table exists) show no earlier stay. The sessions are what make
this right: a regular who was never greeted (skipped, opted out, present at start-up) is not a
first-timer; the current join's own session is excluded by time, so the usertracker writing it
first cannot hide the first visit (docs/upgrading-from-go.md, "Greetings").

Text: from the ollama plugin (bus request ``ollama.generate``, purpose ``greeting``) when
``use_greeting_engine`` is on, else or when it fails, is slower than ``ollama_timeout_seconds``
or is not running, from the greetings file (``greetings_file``, default the packaged
``greetings.txt``; format in ``greetings.py``). Names are inserted as plain text, and every line
is sent with ``user_input=True``, so a leading "/" never reaches the server as a command.

Persistence (Go tables): one ``daz_greeter_history`` row per greeting sent (type ``standard``,
``first_time`` or ``test``; metadata carries a ``greeting_id`` so a retried write is recorded
once); ``daz_greeter_state`` is claimed atomically before sending, which is the channel cooldown
across restarts and across two daz processes; ``daz_greeter_preferences`` holds opt-outs. A
history write that fails is handed to the retry queue.

Commands: ``!greeter on|off`` (anyone: your greetings in this channel), ``!greeter test
[user]`` (bot admins: greet someone present now, ignoring cooldowns, never an opted-out user).

Config: ``plugins.greeter`` in docs/config.md.
"""
from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

from daz.bus import NoResponder
from daz.commands import CommandContext, CommandRefused, UsageError
from daz.cytube.events import UserJoined, UserLeft, UserList
from daz.db.pool import table_exists
from daz.events import RoomDisconnected, RoomJoined
from daz.humanize import clean_username, one_line
from daz.plugins.base import Example, Plugin, command, every, in_order
from daz.plugins.greeter import store
from daz.plugins.greeter.config import GreeterConfig
from daz.plugins.greeter.greetings import NAME_CHARS, Greetings, as_question, clean_generated, zone

__all__ = ["Greeter", "GreeterConfig", "as_question", "clean_generated"]

@dataclass
class RoomWatch:
    """What the greeter knows of one room, from its own events (ordered, one subscription)."""

    live: bool = False  # the join burst is over and we are connected
    quiet_until: float = 0.0
    present: set[str] = field(default_factory=set)
    last_seen: dict[str, float] = field(default_factory=dict)  # name → when last known here
    pending: dict[str, asyncio.Task] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_greeting: float = float("-inf")  # in memory, for when the database cannot be asked


class Greeter(Plugin[GreeterConfig]):
    name = "greeter"
    after = ("sql", "retry")
    description = "Greets people who arrive (first-timers too), with opt-out"
    retry_operations: ClassVar[dict[str, str]] = {"record_greeting": "_retry_record_greeting"}

    async def setup(self) -> None:
        self.random = random.Random()
        self.rooms: dict[str, RoomWatch] = {}
        self.greeted: dict[tuple[str, str], float] = {}  # (channel, name) → time, in memory
        self.last_text: dict[tuple[str, str], str] = {}
        default = one_line(self.config.default_greeting, 400).replace("%s", "{user}")
        self.greetings = Greetings.load(self.config.greetings_file, zone(self.config.timezone),
                                        fallback=default or "Hi {user}!", rng=self.random)
        # Whether the usertracker's sessions table exists; asked at the first arrival, so a
        # database that is down at start-up does not disable the greeter.
        self.use_sessions: bool | None = None

    async def teardown(self) -> None:
        tasks = [t for w in self.rooms.values() for t in w.pending.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait for every scheduled greeting to be sent or dropped (tests, shutdown)."""
        tasks = [t for w in self.rooms.values() for t in w.pending.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def watch(self, room_id: str) -> RoomWatch:
        return self.rooms.setdefault(room_id, RoomWatch())

    # ------------------------------------------------------------------ events (in room order)

    async def _room_joined(self, ev: RoomJoined) -> None:
        w = self.watch(ev.room_id)
        w.live = True
        if ev.reconnect:
            w.quiet_until = self.ctx.clock.time() + self.config.reconnect_grace_seconds

    async def _room_disconnected(self, ev: RoomDisconnected) -> None:
        w = self.watch(ev.room_id)
        w.live = False
        now = self.ctx.clock.time()
        # Whoever was here is "last seen now": coming back after our reconnect is not an arrival.
        for key in w.present:
            w.last_seen[key] = now
        w.present.clear()
        for task in w.pending.values():
            task.cancel()

    async def _user_list(self, ev: UserList) -> None:
        w = self.watch(ev.room_id)
        now = self.ctx.clock.time()
        names = {u.name.lower() for u in ev.users if u.name}
        for key in w.present - names:
            w.last_seen[key] = now
        w.present = names

    async def _user_left(self, ev: UserLeft) -> None:
        if not ev.username:
            return
        w = self.watch(ev.room_id)
        key = ev.username.lower()
        w.present.discard(key)
        w.last_seen[key] = self.ctx.clock.time()
        task = w.pending.pop(key, None)
        if task is not None:
            task.cancel()  # gone before we said hello

    async def _user_joined(self, ev: UserJoined) -> None:
        name = ev.username
        if not name:
            return
        w = self.watch(ev.room_id)
        key = name.lower()
        now = self.ctx.clock.time()
        back_after = now - w.last_seen.pop(key, float("-inf"))
        w.present.add(key)
        room = self.ctx.rooms.get(ev.room_id)
        if room is None or not w.live or room.is_self(name):
            return
        if one_line(name, 100) != name:  # control characters: no CyTube server sends these
            self.log.warning("greeter %s: ignoring a join with an unusable name %r", ev.channel,
                             name[:40])
            return
        if now < w.quiet_until:
            self.log.debug("greeter %s: %s joined during the reconnect grace", ev.channel, name)
            return
        if back_after < self.config.rejoin_window_minutes * 60:
            self.log.debug("greeter %s: %s is back after %.0fs, not greeted", ev.channel, name,
                           back_after)
            return
        if key in w.pending:
            return
        if self.random.random() < self.config.skip_probability:
            self.log.debug("greeter %s: skipping %s by chance", ev.channel, name)
            return
        task = asyncio.create_task(self._arrival(room, w, name, ev.received_at),
                                   name=f"greeter:{ev.channel}:{key}")
        w.pending[key] = task
        # A task cancelled before it ran never reaches its own clean-up: forget it here.
        def forget(done: asyncio.Task[None], k: str = key) -> None:
            if w.pending.get(k) is done:
                w.pending.pop(k, None)

        task.add_done_callback(forget)

    event = in_order({RoomJoined: _room_joined, RoomDisconnected: _room_disconnected,
                      UserList: _user_list, UserLeft: _user_left, UserJoined: _user_joined},
                     max_queue=50_000)

    # ------------------------------------------------------------------ one arrival

    async def _arrival(self, room: Any, w: RoomWatch, name: str, joined_at: float) -> None:
        try:
            verdict = await self._check(room.channel, name, joined_at)
            if verdict is None:
                return
            delay = self.random.uniform(self.config.delay_min_seconds,
                                        self.config.delay_max_seconds)
            await asyncio.sleep(delay)
            async with w.lock:
                if not w.live or not room.state.is_present(name):
                    self.log.debug("greeter %s: %s left before the greeting", room.channel, name)
                    return
                await self._send(room, w, name, verdict)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("greeter %s: greeting %s failed", room.channel, name)

    async def _check(self, channel: str, name: str, joined_at: float) -> str | None:
        """The greeting type for this arrival, or None when it must not be greeted."""
        now = self.ctx.clock.time()
        cooldown = self.config.cooldown_minutes * 60
        if now - self.greeted.get((channel, name.lower()), float("-inf")) < cooldown:
            return None
        try:
            async with self.ctx.db.acquire() as conn:
                if self.use_sessions is None:
                    self.use_sessions = await table_exists(conn, store.SESSIONS)
                if await store.opted_out(conn, channel, name):
                    return None
                window = self.config.rejoin_window_minutes * 60
                if self.use_sessions and window > 0 and await store.left_recently(
                        conn, channel, name, now - window, joined_at - 1.0):
                    return None  # left shortly before a daz restart and came back
        except Exception as exc:  # opt-out unknown: do not risk greeting someone who said no
            self.log.warning("greeter %s: cannot check %s's opt-out (%s); not greeting",
                             channel, name, exc)
            return None
        try:
            async with self.ctx.db.acquire() as conn:
                if await store.greeted_since(conn, channel, name, now - cooldown):
                    return None
                first = await store.first_visit(conn, channel, name, joined_at - 1.0,
                                                bool(self.use_sessions))
        except Exception as exc:  # history unreadable: the memory cooldown above still holds
            self.log.warning("greeter %s: history unavailable for %s (%s)", channel, name, exc)
            first = False
        return "first_time" if first else "standard"

    async def _send(self, room: Any, w: RoomWatch, name: str, kind: str,
                    force: bool = False) -> str | None:
        """Claim the channel's turn, compose, send, record. Returns the text sent."""
        channel = room.channel
        now = self.ctx.clock.time()
        claimed: bool | None = None  # None: the database could not be asked
        try:
            async with self.ctx.db.acquire() as conn:
                claimed = await store.claim_channel(
                    conn, channel, name, now, self.config.channel_cooldown_seconds,
                    self.config.cooldown_minutes * 60, force)
        except Exception as exc:
            self.log.warning("greeter %s: cannot claim the greeting turn (%s)", channel, exc)
        if claimed is False:
            self.log.debug("greeter %s: channel cooldown, %s not greeted", channel, name)
            return None
        count_state = claimed is None  # the retried history write will count it instead
        if count_state and not force and (
                now - w.last_greeting < self.config.channel_cooldown_seconds):
            return None
        w.last_greeting = now
        self.greeted[(channel, name.lower())] = now
        text, source = await self._compose(room, name, kind == "first_time")
        await room.say(text, user_input=True)
        self.last_text[(channel, name.lower())] = text
        self.log.info("greeter %s: greeted %s (%s, %s)", channel, name, kind, source)
        await self._record({"channel": channel, "username": name, "type": kind, "text": text,
                            "t": now, "count_state": count_state,
                            "metadata": {"greeting_id": uuid.uuid4().hex, "source": source}})
        return text

    async def _record(self, greeting: dict) -> None:
        try:
            async with self.ctx.db.acquire() as conn:
                await store.record(conn, greeting)
        except Exception as exc:
            self.log.warning("greeter %s: could not record the greeting of %s (%s); queued for"
                             " retry", greeting["channel"], greeting["username"], exc)
            await self.defer_retry("record_greeting", greeting,
                                   key=f"greeter:{greeting['metadata']['greeting_id']}",
                                   error=str(exc)[:500])

    async def _retry_record_greeting(self, payload: dict) -> None:
        async with self.ctx.db.acquire() as conn:
            await store.record(conn, payload)

    # ------------------------------------------------------------------ text

    async def _compose(self, room: Any, name: str, first_time: bool) -> tuple[str, str]:
        text = None
        if self.config.use_greeting_engine:
            text = await self._generated(room.channel, name, first_time)
        source = "ollama" if text else "file"
        if not text:
            text = self.greetings.pick(name, room.channel, first_time=first_time,
                                       when=self.ctx.clock.now(),
                                       avoid=self.last_text.get((room.channel, name.lower())))
        if self.config.enforce_question_greeting:
            text = as_question(text)
        return text[:self.config.max_chars], source

    async def _generated(self, channel: str, name: str, first_time: bool) -> str | None:
        visit = ("It is their first visit ever." if first_time
                 else "They have been here before.")
        payload = {"purpose": "greeting", "channel": channel, "username": name,
                   "max_chars": self.config.max_chars,
                   "prompt": (f"Write one short, casual, friendly line welcoming the user "
                              f"{one_line(name, NAME_CHARS)} who just joined the chat room "
                              f"{one_line(channel, NAME_CHARS)}. "
                              f"{visit} Reply with the greeting only.")}
        timeout = self.config.ollama_timeout_seconds
        try:
            raw = await asyncio.wait_for(
                self.ctx.bus.request("ollama.generate", payload, timeout=timeout), timeout)
        except NoResponder:
            return None
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            self.log.info("greeter %s: the model took longer than %.0fs; using the file",
                          channel, timeout)
            return None
        except Exception as exc:
            self.log.info("greeter %s: the model failed (%s); using the file", channel, exc)
            return None
        return clean_generated(raw, self.config.max_chars)

    # ------------------------------------------------------------------ commands

    @command("greeter", cooldown=5, usage="!greeter on|off | !greeter test [user] (admins)",
             description="Switch greetings for you on or off in this channel",
             examples=[("!greeter off", "OK alice, no more greetings for you in this channel"
                                        " (!greeter on to undo)."),
                       ("!greeter on", "OK alice, I'll greet you again in this channel."),
                       Example("!greeter test ghost", "ghost isn't here.", admin=True)])
    async def greeter(self, ctx: CommandContext) -> None:
        raise UsageError("!greeter on|off, or !greeter test [user] for admins")

    @greeter.subcommand("on", description="Greet me again in this channel")
    async def greeter_on(self, ctx: CommandContext) -> None:
        await self._opt(ctx, out=False)

    @greeter.subcommand("off", description="No more greetings for me in this channel")
    async def greeter_off(self, ctx: CommandContext) -> None:
        await self._opt(ctx, out=True)

    @greeter.subcommand("test", description="Greet someone who is here now, as a test (admins)")
    async def greeter_test(self, ctx: CommandContext, user: str = "") -> None:
        await self._test(ctx, user or ctx.username)

    async def _opt(self, ctx: CommandContext, *, out: bool) -> None:
        try:
            async with self.ctx.db.acquire() as conn:
                await store.set_opt_out(conn, ctx.room.channel, ctx.username, out,
                                        self.ctx.clock.time())
        except Exception as exc:
            self.log.warning("greeter: could not store %s's preference: %s", ctx.username, exc)
            await ctx.reply("I couldn't save that just now; please try again later.")
            return
        if out:
            w = self.watch(ctx.room.id)
            task = w.pending.pop(ctx.username.lower(), None)
            if task is not None:
                task.cancel()
            await ctx.reply(f"OK {ctx.username}, no more greetings for you in this channel"
                            " (!greeter on to undo).")
        else:
            await ctx.reply(f"OK {ctx.username}, I'll greet you again in this channel.")

    async def _test(self, ctx: CommandContext, target: str) -> None:
        if not ctx.is_admin:
            raise CommandRefused("!greeter test is for bot admins only.")
        name = clean_username(target)
        if name is None:
            await ctx.reply("That doesn't look like a CyTube username (1-20 letters, digits,"
                            " - or _).")
            return
        if ctx.room.is_self(name):
            await ctx.reply("I'm not going to greet myself.")
            return
        user = ctx.room.state.user(name)
        if user is None:
            await ctx.reply(f"{name} isn't here.")
            return
        try:
            async with self.ctx.db.acquire() as conn:
                if await store.opted_out(conn, ctx.room.channel, user.name):
                    await ctx.reply(f"{user.name} has opted out of greetings.")
                    return
        except Exception as exc:  # the error may name tables or hosts: log it, not chat it
            self.log.warning("greeter: !greeter test cannot check %s's opt-out: %r",
                             user.name, exc)
            await ctx.reply(f"I can't check {user.name}'s preferences right now; try again"
                            " later.")
            return
        w = self.watch(ctx.room.id)
        async with w.lock:
            await self._send(ctx.room, w, user.name, "test", force=True)

    # ------------------------------------------------------------------ upkeep

    @every(minutes=10)
    async def prune(self) -> None:
        """Forget absences older than the rejoin window and greetings older than the cooldown."""
        now = self.ctx.clock.time()
        window = self.config.rejoin_window_minutes * 60
        for w in self.rooms.values():
            for key, t in list(w.last_seen.items()):
                if now - t >= window:
                    del w.last_seen[key]
        cooldown = self.config.cooldown_minutes * 60
        for greeted, t in list(self.greeted.items()):
            if now - t >= cooldown:
                del self.greeted[greeted]
                self.last_text.pop(greeted, None)

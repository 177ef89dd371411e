"""Room: one configured CyTube channel — its connection, its RoomState and its Outbox.

Three tasks per room, nothing shared with other rooms (one room reconnecting never stalls
another):

* the supervisor: discover → connect → joinChannel → login → wait until the socket is gone →
  decide (retry with backoff, or give up) → again;
* the dispatcher: publishes this room's events on the bus in arrival order;
* the pump: sends the outbox under the server's flood limits while the room is joined.

Every frame goes through ``_on_frame`` synchronously: parse (never raises) → RoomState.apply →
mark (replayed / own / whisper / shadow) → react (login result, join complete, kick, cooldown,
our own echo) → queue for publishing. The frame handler is the only writer of RoomState.

Replayed history: the server replays up to 15 old chat lines on join, before the userlist. Every
chat line before the join burst is over (logged in and userlist seen) is marked ``replayed``, and
so is any later line older than the newest replayed one (compared in the server's own clock, so
a skewed local clock cannot make live lines look old).
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

import aiohttp

from daz.clock import Clock
from daz.cytube import events as ev
from daz.cytube.connection import (RATE_LIMIT_WAIT, Backoff, ConnectFailed, Connection,
                                   DiscoveryError, Verdict, discover, judge_kick,
                                   judge_login_error)
from daz.cytube.outbox import SERVER_BURST, SERVER_RATE, Outbox, Outgoing, safe_limits
from daz.cytube.state import RoomState
from daz.events import Event, MessageSent, RoomConnected, RoomDisconnected, RoomJoined

log = logging.getLogger(__name__)

MAX_EVENT_TYPES = 200  # distinct metric labels per room; a hostile server cannot blow up /metrics
PM_REFUSALS = ("pm failed", "you can't pm yourself", "you must be signed in to send pms")


class Room:
    join_timeout = 30.0  # connected but not joined after this long: drop and retry
    flush_timeout = 5.0  # stop() waits this long for queued lines to go out

    def __init__(self, config, bus, *, metrics=None, http: aiohttp.ClientSession | None = None,
                 clock: Clock | None = None):
        self.config = config
        self.bus = bus
        self.metrics = metrics
        self.clock = clock or Clock()
        self.id: str = config.id
        self.channel: str = config.channel
        self.state = RoomState(config.channel)
        self.outbox = Outbox(room=self.id, on_drop=self._outbox_dropped)
        self.backoff = Backoff(cap=config.max_backoff_seconds)
        self._http = http
        self._own_http: aiohttp.ClientSession | None = None
        self._conn: Connection | None = None
        self._seq = 0
        self._inbox: collections.deque[Event] = collections.deque()
        self._inbox_wake = asyncio.Event()
        self._ready = asyncio.Event()  # joined: the pump may send
        self._outbox_wake = asyncio.Event()
        self._stop_event = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._side_tasks: set[asyncio.Task] = set()
        self._stopping = False
        self._gave_up: str | None = None
        self._last_error: str | None = None
        self._reconnects = 0
        self._failures = 0  # consecutive attempts that did not reach "joined"
        self._connects = 0
        self._joins = 0
        self._joined_at = 0.0
        self._userlist_seen = False
        self._replay_high_water = 0
        self._duplicate_kicks = 0
        self._session_verdict: Verdict | None = None
        self.last_retry_delay = 0.0  # seconds the supervisor last waited before reconnecting
        self._warned: set[str] = set()
        self._types: set[str] = set()

    # ------------------------------------------------------------------ public surface

    @property
    def bot_name(self) -> str:
        return self.state.bot_name or self.config.username

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.connected

    async def start(self) -> None:
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._dispatch(), name=f"room:{self.id}:dispatch"),
                       loop.create_task(self._pump(), name=f"room:{self.id}:outbox"),
                       loop.create_task(self._supervise(), name=f"room:{self.id}:connect")]

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        if self._ready.is_set() and self.outbox.depth:
            deadline = time.monotonic() + self.flush_timeout
            while self.outbox.depth and self._ready.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        self._stop_event.set()
        conn = self._conn
        if conn is not None:
            await conn.close("stopping")
        supervisor = self._tasks[2] if len(self._tasks) == 3 else None
        if supervisor is not None:
            try:
                await asyncio.wait_for(asyncio.shield(supervisor), 5)
            except (asyncio.TimeoutError, Exception):
                supervisor.cancel()
        for task in (*self._tasks[1:2], *self._side_tasks):
            task.cancel()
        left = self.outbox.clear("the room stopped")
        if left:
            log.warning("room %s: %d queued line(s) not sent before stopping", self.id, left)
        # Let the dispatcher publish what is queued (RoomDisconnected included), then end it.
        deadline = time.monotonic() + 2
        while self._inbox and time.monotonic() < deadline and self._tasks:
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._side_tasks, return_exceptions=True)
        if self._own_http is not None:
            await self._own_http.close()
        self._set_gauge_connected(False)

    async def say(self, text: str, *, user_input: bool = True) -> None:
        if not self._may_send("chat", text):
            return
        self.outbox.put_chat(text, user_input=user_input, now=time.monotonic())
        self._outbox_changed()

    async def pm(self, to: str, text: str, *, user_input: bool = True) -> None:
        if not isinstance(to, str) or not to.strip():
            log.warning("room %s: PM without a recipient not sent: %.60r", self.id, text)
            return
        if not self._may_send("pm", text):
            return
        self.outbox.put_pm(to.strip(), text, user_input=user_input, now=time.monotonic())
        self._outbox_changed()

    async def emit(self, event: str, payload: Any = None) -> None:
        """A raw socket.io emit (queue, delete, ...). Not queued: it is logged and dropped when
        the room is not joined, since replaying a stale playlist action later would surprise."""
        conn = self._conn
        if conn is None or not self._ready.is_set():
            log.warning("room %s: not joined, %r not sent", self.id, event)
            return
        try:
            await conn.emit(event, payload)
        except ConnectionError as exc:
            log.warning("room %s: %r not sent: %s", self.id, event, exc)

    def status(self) -> dict:
        return {"connected": self.connected, "logged_in": self.state.logged_in,
                "joined": self.state.joined and self._ready.is_set(), "gave_up": self._gave_up,
                "last_error": self._last_error, "reconnects": self._reconnects,
                "outbox_depth": self.outbox.depth}

    # ------------------------------------------------------------------ frames

    def _on_frame(self, event_name: Any, payload: Any) -> None:
        """Handle one received frame. Never raises, whatever the server sent."""
        self._seq += 1
        event = ev.parse_event(event_name, payload, room_id=self.id, channel=self.channel,
                               seq=self._seq, received_at=self.clock.time())
        try:
            if event.malformed:
                self._log_malformed(event)
            self.state.apply(event)
            self._mark(event)
            self._count(event)
        except Exception:  # a state bug must not cost the event or the room
            log.exception("room %s: could not apply %s", self.id, event.event_name)
        self._enqueue(event)
        try:
            self._react(event)
        except Exception:
            log.exception("room %s: could not react to %s", self.id, event.event_name)

    def _mark(self, event: ev.CytubeEvent) -> None:
        if isinstance(event, ev.ChatMessage):
            if not self.state.joined:
                event.replayed = True
                if event.time > self._replay_high_water:
                    self._replay_high_water = event.time
            elif 0 < event.time < self._replay_high_water:
                event.replayed = True
            event.own = self._is_own(event.username)
        elif isinstance(event, ev.PrivateMessage):
            event.own = self._is_own(event.username)

    def _is_own(self, name: str) -> bool:
        mine = self.bot_name
        return bool(mine) and name.lower() == mine.lower()

    def _react(self, event: ev.CytubeEvent) -> None:
        now = time.monotonic()
        if isinstance(event, ev.ChatMessage):
            if event.own and not event.replayed:
                self.outbox.echo("chat", event.text, now)
        elif isinstance(event, ev.PrivateMessage):
            if event.own:
                self.outbox.echo("pm", event.text, now)
        elif isinstance(event, ev.Cooldown):
            dropped = self.outbox.cooldown(event.milliseconds, now)
            log.info("room %s: server cooldown %.0f ms%s", self.id, event.milliseconds,
                     "; resending the dropped line" if dropped else "")
            self._outbox_changed()
        elif isinstance(event, ev.ErrorMessage):
            log.info("room %s: server error: %s", self.id, event.msg[:200])
            if event.msg.lower().startswith(PM_REFUSALS):
                self.outbox.failed("pm", now)
        elif isinstance(event, ev.LoginResult):
            self._login_result(event)
        elif isinstance(event, ev.UserList):
            self._userlist_seen = True
            self._check_joined()
        elif isinstance(event, ev.Kicked):
            verdict = judge_kick(event.reason, self._duplicate_kicks)
            if "duplicate login" in event.reason.lower():
                self._duplicate_kicks += 1
            self._session_verdict = verdict
            log.warning("room %s: %s", self.id, verdict.reason)

    def _login_result(self, event: ev.LoginResult) -> None:
        if event.success:
            log.info("room %s: logged in as %s%s", self.id, event.username or self.bot_name,
                     " (guest)" if event.guest else "")
            self._check_joined()
            return
        verdict = judge_login_error(event.error)
        self._last_error = verdict.reason
        log.warning("room %s: %s", self.id, verdict.reason)
        conn = self._conn
        if conn is None:
            return
        if verdict.relogin:
            self._side_task(self._login_again(conn, verdict.min_wait))
            return
        self._session_verdict = verdict
        self._side_task(conn.close(verdict.reason))

    def _check_joined(self) -> None:
        logged_in = self.state.logged_in or not self.config.username
        if self.state.joined or not logged_in or not self._userlist_seen:
            return
        self.state.joined = True
        self._joins += 1
        self._failures = 0
        self._joined_at = time.monotonic()
        self._last_error = None
        self._enqueue(RoomJoined(room_id=self.id, channel=self.channel, bot_name=self.bot_name,
                                 reconnect=self._joins > 1))
        log.info("room %s: joined %s as %s", self.id, self.channel, self.bot_name or "anonymous")
        self._ready.set()
        self._set_gauge_connected(True)
        self._outbox_changed()

    def _log_malformed(self, event: ev.CytubeEvent) -> None:
        first = event.event_name not in self._warned and len(self._warned) < MAX_EVENT_TYPES
        if first:
            self._warned.add(event.event_name)
        log.log(logging.WARNING if first else logging.DEBUG,
                "room %s: malformed %s (published anyway): %s", self.id, event.event_name,
                event.malformed)

    def _count(self, event: ev.CytubeEvent) -> None:
        if self.metrics is None:
            return
        kind = event.event_name
        if kind not in self._types:
            if len(self._types) >= MAX_EVENT_TYPES:
                kind = "other"
            else:
                self._types.add(kind)
        self.metrics.events_received.labels(room=self.id, type=kind).inc()

    # ------------------------------------------------------------------ publishing

    def _enqueue(self, event: Event) -> None:
        self._inbox.append(event)
        self._inbox_wake.set()

    async def _dispatch(self) -> None:
        inbox = self._inbox
        while True:
            if not inbox:
                self._inbox_wake.clear()
                await self._inbox_wake.wait()
                continue
            event = inbox.popleft()
            try:
                await self.bus.publish(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("room %s: publishing %s failed", self.id,
                              getattr(event, "topic", event))

    # ------------------------------------------------------------------ outbox

    def _may_send(self, kind: str, text: Any) -> bool:
        if self._stopping or self._gave_up or not self.config.username:
            why = ("stopping" if self._stopping else f"gave up: {self._gave_up}"
                   if self._gave_up else "read-only (no username)")
            log.warning("room %s: %s not sent (%s): %.60r", self.id, kind, why, text)
            if self.metrics is not None:
                self.metrics.outbox_dropped.labels(room=self.id).inc()
            return False
        return True

    def _outbox_changed(self) -> None:
        if self.metrics is not None:
            self.metrics.outbox_depth.labels(room=self.id).set(self.outbox.depth)
        self._outbox_wake.set()

    def _outbox_dropped(self, message: Outgoing) -> None:
        if self.metrics is not None:
            self.metrics.outbox_dropped.labels(room=self.id).inc()

    def _apply_limits(self) -> None:
        flood = self.state.antiflood
        if flood is None:
            self.outbox.set_limits(*safe_limits(SERVER_BURST, SERVER_RATE))
            return
        params = self.state.options.get("chat_antiflood_params")
        cooldown = params.get("cooldown") if isinstance(params, dict) else None
        if isinstance(cooldown, bool) or not isinstance(cooldown, (int, float)):
            cooldown = None
        self.outbox.set_limits(*safe_limits(*flood, cooldown))

    async def _pump(self) -> None:
        while True:
            await self._ready.wait()
            self._apply_limits()
            self._outbox_wake.clear()
            now = time.monotonic()
            delay = self.outbox.delay(now)
            if delay is None:
                await self._outbox_wake.wait()
                continue
            if delay > 0:
                try:
                    await asyncio.wait_for(self._outbox_wake.wait(), delay)
                except asyncio.TimeoutError:
                    pass
                continue
            conn = self._conn
            if conn is None or not conn.connected:
                await asyncio.sleep(0.05)  # the supervisor is about to clear _ready
                continue
            message = self.outbox.pop(now)
            try:
                if message.to is None:
                    await conn.emit("chatMsg", {"msg": message.text, "meta": {}})
                else:
                    await conn.emit("pm", {"to": message.to, "msg": message.text, "meta": {}})
            except ConnectionError:
                self.outbox.unsent(message)
                await asyncio.sleep(0.05)
                continue
            if self.metrics is not None:
                self.metrics.outbox_sent.labels(room=self.id, kind=message.kind).inc()
                self.metrics.outbox_depth.labels(room=self.id).set(self.outbox.depth)
            self._enqueue(MessageSent(room_id=self.id, channel=self.channel, text=message.text,
                                      to=message.to))

    # ------------------------------------------------------------------ connecting

    async def _supervise(self) -> None:
        http = self._http
        if http is None or http.closed:
            http = self._own_http = aiohttp.ClientSession()
        attempt = 0
        while not self._stopping:
            if attempt:
                self._reconnects += 1
                if self.metrics is not None:
                    self.metrics.reconnects.labels(room=self.id).inc()
            attempt += 1
            verdict, was_connected, joined_for = await self._attempt(http)
            if self._stopping:
                if was_connected:
                    self._disconnected("stopped", will_retry=False)
                break
            self._failures += 1
            # reconnect_attempts N: after a loss (or a failed first connect), N more tries that
            # each fail to reach "joined", then stop. 0 keeps trying.
            limit = self.config.reconnect_attempts
            if not verdict.fatal and limit and self._failures > limit:
                verdict = Verdict(fatal=True, reason=f"gave up after {limit} failed "
                                                     f"reconnect attempt(s); last: {verdict.reason}")
            if was_connected:
                self._disconnected(verdict.reason, will_retry=not verdict.fatal)
            if verdict.fatal:
                self._give_up(verdict.reason)
                break
            self.backoff.connected_for(joined_for)
            delay = (self.config.max_backoff_seconds if verdict.slow
                     else self.backoff.next_delay(verdict.min_wait))
            self.last_retry_delay = delay
            log.info("room %s: reconnecting in %.1fs (%s)", self.id, delay, verdict.reason)
            try:
                await asyncio.wait_for(self._stop_event.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def _attempt(self, http: aiohttp.ClientSession) -> tuple[Verdict, bool, float]:
        """One connection, start to end: (what went wrong, whether it connected, joined for s)."""
        self._session_verdict = None
        self._userlist_seen = False
        self._replay_high_water = 0
        self.state.reset_for_reconnect()
        try:
            url = await discover(http, self.config.server_url, self.channel)
        except DiscoveryError as exc:
            return self._failed(str(exc)), False, 0.0
        conn = Connection(url, self._on_frame, name=self.id)
        self._conn = conn
        try:
            await conn.open()
        except asyncio.CancelledError:
            self._conn = None
            await conn.close("stopping")
            raise
        except ConnectFailed as exc:
            self._conn = None
            if exc.banned:
                return Verdict(fatal=True, reason=str(exc)), False, 0.0
            return self._failed(str(exc), RATE_LIMIT_WAIT if exc.rate_limited else 0.0), \
                False, 0.0
        try:
            self._enqueue(RoomConnected(room_id=self.id, channel=self.channel,
                                        reconnect=self._connects > 0))
            self._connects += 1
            log.info("room %s: connected to %s", self.id, url)
            await conn.emit("joinChannel", {"name": self.channel})
            if self.config.username:
                await conn.emit("login", self._login_payload())
            try:
                await asyncio.wait_for(conn.closed.wait(), self.join_timeout)
            except asyncio.TimeoutError:
                if not self.state.joined:
                    await conn.close(f"not joined after {self.join_timeout:g}s")
            await conn.closed.wait()
        except ConnectionError:
            pass  # closed while we were sending the join; the reason is on conn
        finally:
            self._ready.clear()
            self._set_gauge_connected(False)
            if not conn.closed.is_set():
                await conn.close("stopping")
            self._conn = None
        joined_for = time.monotonic() - self._joined_at if self.state.joined else 0.0
        self.state.joined = False
        # Unanswered lines may be lost with the socket: send them again on the next one. When
        # stopping there is no next one, and they most likely arrived.
        requeued = 0 if self._stopping else self.outbox.requeue_in_flight()
        if requeued:
            log.info("room %s: %d unanswered line(s) will be sent again", self.id, requeued)
        verdict = self._session_verdict or Verdict(reason=conn.close_reason or "disconnected")
        self._last_error = verdict.reason
        if not self._stopping:
            log.warning("room %s: connection ended: %s", self.id, verdict.reason)
        return verdict, True, joined_for

    def _failed(self, reason: str, min_wait: float = 0.0) -> Verdict:
        self._last_error = reason
        log.warning("room %s: %s", self.id, reason)
        return Verdict(min_wait=min_wait, reason=reason)

    def _login_payload(self) -> dict:
        if self.config.password:
            return {"name": self.config.username, "pw": self.config.password}
        return {"name": self.config.username}

    async def _login_again(self, conn: Connection, wait: float) -> None:
        log.info("room %s: trying the guest login again in %.0fs", self.id, wait)
        try:
            await asyncio.wait_for(conn.closed.wait(), wait)
            return  # the socket went away; the supervisor starts over
        except asyncio.TimeoutError:
            pass
        if conn.connected and not self.state.logged_in:
            try:
                await conn.emit("login", self._login_payload())
            except ConnectionError:
                pass

    def _disconnected(self, reason: str, *, will_retry: bool) -> None:
        self._enqueue(RoomDisconnected(room_id=self.id, channel=self.channel, reason=reason,
                                       will_retry=will_retry))

    def _give_up(self, reason: str) -> None:
        self._gave_up = reason
        self._last_error = reason
        log.error("room %s: giving up: %s", self.id, reason)
        dropped = self.outbox.clear("the room gave up")
        if dropped:
            self._outbox_changed()

    def _side_task(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def _set_gauge_connected(self, up: bool) -> None:
        if self.metrics is not None:
            self.metrics.room_connected.labels(room=self.id).set(1 if up else 0)

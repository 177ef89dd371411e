"""Room: one configured CyTube channel — its connection, its RoomState and its Outbox.

This is the face the rest of daz sees (app.py, plugins, the web pages); the work is done by three
parts, each one task, nothing shared with other rooms:

* the lifecycle (lifecycle.py): discover → connect → joinChannel → login → wait until the socket
  is gone → retry with backoff, or give up → again;
* the frame intake (intake.py): every frame → typed event → RoomState → marks → the bus, in
  arrival order;
* the outbox pump (outbox_pump.py): sends the outbox under the server's flood limits while the
  room is joined.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp

from daz.clock import Clock
from daz.cytube.intake import FrameIntake
from daz.cytube.lifecycle import RoomLifecycle
from daz.cytube.outbox import Outbox, Outgoing
from daz.cytube.outbox_pump import OutboxPump
from daz.cytube.reconnect_policy import Backoff
from daz.cytube.state import RoomState
from daz.logs import log_context
from daz.metrics import RoomCounts, RoomRow

log = logging.getLogger(__name__)


class Room:
    join_timeout = 30.0  # connected but not joined after this long: drop and retry
    flush_timeout = 5.0  # stop() waits this long for queued lines to go out

    def __init__(self, config, bus, *, metrics=None, http: aiohttp.ClientSession | None = None,
                 clock: Clock | None = None, pacer=None):
        self.config = config
        self.bus = bus
        self.metrics = metrics
        self.clock = clock or Clock()
        self.pacer = pacer  # cytube.join_pacer.JoinPacer shared by the process's rooms, or None
        self.id: str = config.id
        self.channel: str = config.channel
        self.state = RoomState(config.channel)
        self.counts = RoomCounts()  # read by /metrics and /health
        self.outbox = Outbox(room=self.id, on_drop=self._outbox_dropped)
        self.intake = FrameIntake(self)
        self.pump = OutboxPump(self)
        self.lifecycle = RoomLifecycle(self, http)
        # dispatch, pump, lifecycle, in that order: stop() ends them one by one by position
        self._tasks: list[asyncio.Task] = []
        self._stopping = False

    # ------------------------------------------------------------------ public surface

    @property
    def bot_name(self) -> str:
        return self.state.bot_name or self.config.username

    def is_self(self, name: str) -> bool:
        """Whether ``name`` is this bot, case-insensitively (before login too: the configured
        name). The one place plugins and the intake ask it."""
        mine = self.bot_name
        return self.state.is_self(name) or (bool(mine) and name.lower() == mine.lower())

    @property
    def connected(self) -> bool:
        conn = self.lifecycle.conn
        return conn is not None and conn.connected

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def backoff(self) -> Backoff:
        return self.lifecycle.backoff

    @property
    def last_retry_delay(self) -> float:
        return self.lifecycle.last_retry_delay

    async def start(self) -> None:
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        tagged = log_context(room=self.id)  # every line these tasks log names the room
        self._tasks = [loop.create_task(self.intake.dispatch(), name=f"room:{self.id}:dispatch",
                                        context=tagged.copy()),
                       loop.create_task(self.pump.run(), name=f"room:{self.id}:outbox",
                                        context=tagged.copy()),
                       loop.create_task(self.lifecycle.run(), name=f"room:{self.id}:connect",
                                        context=tagged.copy())]

    async def stop(self, timeout: float | None = None) -> None:
        """Send what is queued, leave, and publish what was received; within ``timeout``
        seconds when given (the app's stop budget)."""
        if self._stopping:
            return
        self._stopping = True
        end = time.monotonic() + timeout if timeout is not None else float("inf")
        lifecycle, ready = self.lifecycle, self.pump.ready
        if ready.is_set() and self.outbox.depth:
            deadline = min(end, time.monotonic() + self.flush_timeout)
            # A bounded poll once, at stop: the outbox has no "drained" event to wait on.
            while self.outbox.depth and ready.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        lifecycle.stop_requested.set()
        conn = lifecycle.conn
        if conn is not None:
            await conn.close("stopping")
        supervisor = self._tasks[2] if len(self._tasks) == 3 else None
        if supervisor is not None:
            try:
                await asyncio.wait_for(asyncio.shield(supervisor),
                                       max(0.1, min(5.0, end - time.monotonic())))
            except (TimeoutError, Exception):
                supervisor.cancel()
        for task in (*self._tasks[1:2], *lifecycle.side_tasks):
            task.cancel()
        left = self.outbox.clear("the room stopped")
        if left:
            log.warning("room %s: %d queued line(s) not sent before stopping", self.id, left)
        # Let the dispatcher publish what is queued (RoomDisconnected included), then end it.
        deadline = min(end, time.monotonic() + 2)
        while self.intake.inbox and time.monotonic() < deadline and self._tasks:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *lifecycle.side_tasks, return_exceptions=True)
        await lifecycle.close_http()

    async def say(self, text: str, *, user_input: bool = True) -> None:
        if not self._may_send("chat", text):
            return
        self.outbox.put_chat(text, user_input=user_input, now=time.monotonic())
        self.pump.outbox_changed()

    async def pm(self, to: str, text: str, *, user_input: bool = True) -> None:
        if not isinstance(to, str) or not to.strip():
            log.warning("room %s: PM without a recipient not sent: %.60r", self.id, text)
            return
        if not self._may_send("pm", text):
            return
        self.outbox.put_pm(to.strip(), text, user_input=user_input, now=time.monotonic())
        self.pump.outbox_changed()

    async def emit(self, event: str, payload: Any = None) -> None:
        """A raw socket.io emit (queue, delete, ...). Not queued: it is logged and dropped when
        the room is not joined, since replaying a stale playlist action later would surprise."""
        conn = self.lifecycle.conn
        if conn is None or not self.pump.ready.is_set():
            log.warning("room %s: not joined, %r not sent", self.id, event)
            return
        try:
            await conn.emit(event, payload)
        except ConnectionError as exc:
            log.warning("room %s: %r not sent: %s", self.id, event, exc)

    @property
    def joined(self) -> bool:
        """In the channel with the outbox running: what /health calls joined."""
        return self.state.joined and self.pump.ready.is_set()

    def metric_row(self) -> RoomRow:
        """What /metrics shows of this room, copied here on the loop (the text is rendered in
        a thread); no status dict: a scrape reads 1,000 rooms in one pass of the loop."""
        return (self.id, self.joined, self.lifecycle.reconnects, self.outbox.depth,
                self.counts.copy())

    def status(self) -> dict:
        lifecycle = self.lifecycle
        return {"connected": self.connected, "logged_in": self.state.logged_in,
                "joined": self.joined,
                "gave_up": lifecycle.gave_up, "last_error": lifecycle.last_error,
                "reconnects": lifecycle.reconnects, "outbox_depth": self.outbox.depth,
                "events_received": self.counts.events_received,
                "outbox_dropped": self.counts.outbox_dropped}

    # ------------------------------------------------------------------ refusing to queue

    def _may_send(self, kind: str, text: Any) -> bool:
        gave_up = self.lifecycle.gave_up
        if self._stopping or gave_up or not self.config.username:
            why = ("stopping" if self._stopping else f"gave up: {gave_up}"
                   if gave_up else "read-only (no username)")
            log.warning("room %s: %s not sent (%s): %.60r", self.id, kind, why, text)
            self.counts.outbox_dropped += 1
            return False
        return True

    def _outbox_dropped(self, message: Outgoing) -> None:
        self.counts.outbox_dropped += 1

"""Frame intake for one Room: every received frame becomes a typed event, in arrival order.

Each frame goes through ``on_frame`` synchronously: parse (never raises) → RoomState.apply →
mark (replayed / own / whisper / shadow) → queue for publishing → react (hand the server's answers
to the outbox pump and to the lifecycle, notice the end of the join burst). The intake is the
only writer of RoomState while a session runs, so handlers on the bus always see the state as it
was right after their event.

Publishing is a separate task (``dispatch``) so that a slow bus never blocks the socket, and so
that events the room itself produces (RoomJoined, MessageSent, ...) take their place in the
same per-room order. When a lane that must not lose anything (the event log's) pushes back for
long enough that ``INBOX_LIMIT`` events wait here, the connection stops reading the socket
until half of them are published (``backlogged``/``wait_for_room``): the server then holds what
it has not sent, and the bot's memory stays bounded.

Replayed history: the server replays up to 15 old chat lines on join, before the userlist. Every
chat line before the join burst is over (logged in and userlist seen) is marked ``replayed``, and
so is any later line older than the newest replayed one (compared in the server's own clock, so
a skewed local clock cannot make live lines look old).
"""
from __future__ import annotations

import asyncio
import collections
import logging
from typing import TYPE_CHECKING, Any

from daz.cytube import events as ev
from daz.events import Event

if TYPE_CHECKING:
    from daz.cytube.room import Room

log = logging.getLogger(__name__)

MAX_WARNED_TYPES = 200  # malformed types warned about once each; a hostile server cannot flood
# Events waiting for the bus before the room stops reading its socket (see ``backlogged``).
INBOX_LIMIT = 1000


class FrameIntake:
    def __init__(self, room: Room):
        self.room = room
        self.seq = 0
        self.inbox: collections.deque[Event] = collections.deque()
        self._inbox_wake = asyncio.Event()
        self._inbox_room = asyncio.Event()  # set when the inbox is down to half its limit
        self._inbox_room.set()
        self._publishing = False  # the dispatch task holds an event the bus has not taken yet
        self._dispatching = False
        self._userlist_seen = False
        self._replay_high_water = 0
        self._warned: set[str] = set()

    def new_session(self) -> None:
        """A new socket: the server will send a whole join burst (and its history) again."""
        self._userlist_seen = False
        self._replay_high_water = 0
        self.room.state.reset_for_reconnect()

    # ------------------------------------------------------------------ frames

    def on_frame(self, event_name: Any, payload: Any) -> None:
        """Handle one received frame. Never raises, whatever the server sent."""
        room = self.room
        self.seq += 1
        event = ev.parse_event(event_name, payload, room_id=room.id, channel=room.channel,
                               seq=self.seq, received_at=room.clock.time())
        try:
            if event.malformed:
                self._log_malformed(event)
            room.state.apply(event)
            self._mark(event)
            self._count(event)
        except Exception:  # a state bug must not cost the event or the room
            log.exception("room %s: could not apply %s", room.id, event.event_name)
        self.publish(event)
        try:
            self._react(event)
        except Exception:
            log.exception("room %s: could not react to %s", room.id, event.event_name)

    def _mark(self, event: ev.CytubeEvent) -> None:
        if isinstance(event, ev.ChatMessage):
            if not self.room.state.joined:
                event.replayed = True
                if event.time > self._replay_high_water:
                    self._replay_high_water = event.time
            elif 0 < event.time < self._replay_high_water:
                event.replayed = True
            event.own = self.room.is_self(event.username)
        elif isinstance(event, ev.PrivateMessage):
            event.own = self.room.is_self(event.username)

    def _react(self, event: ev.CytubeEvent) -> None:
        room = self.room
        if isinstance(event, (ev.ChatMessage, ev.PrivateMessage, ev.Cooldown, ev.ErrorMessage)):
            room.pump.server_answered(event)
        elif isinstance(event, ev.LoginResult):
            room.lifecycle.login_result(event)
            if event.success:
                self._check_joined()
        elif isinstance(event, ev.UserList):
            self._userlist_seen = True
            self._check_joined()
        elif isinstance(event, ev.Kicked):
            room.lifecycle.kicked(event)

    def _check_joined(self) -> None:
        """The join burst is over once we are logged in (or read-only) and have the userlist;
        the login reply and the userlist come in either order."""
        state = self.room.state
        logged_in = state.logged_in or not self.room.config.username
        if state.joined or not logged_in or not self._userlist_seen:
            return
        state.joined = True
        self.room.lifecycle.joined()

    def _log_malformed(self, event: ev.CytubeEvent) -> None:
        first = event.event_name not in self._warned and len(self._warned) < MAX_WARNED_TYPES
        if first:
            self._warned.add(event.event_name)
        log.log(logging.WARNING if first else logging.DEBUG,
                "room %s: malformed %s (published anyway): %s", self.room.id, event.event_name,
                event.malformed)

    def _count(self, event: ev.CytubeEvent) -> None:
        """The room's own count, and the process's per type (never per room and type: that
        grew with rooms × types, see metrics.py)."""
        room = self.room
        room.counts.events_received += 1
        if room.metrics is not None:
            room.metrics.count_event(event.event_name).inc()

    # ------------------------------------------------------------------ publishing

    def publish(self, event: Event) -> None:
        """Hand an event to the bus, after everything handed over before it: at once when
        nothing is waiting and no lane pushes back (the common case, and one task switch less
        per frame), else through the inbox and the dispatch task, which may wait."""
        if self._dispatching and not self.inbox and not self._publishing:
            try:
                if self.room.bus.publish_nowait(event):
                    return
            except Exception:
                log.exception("room %s: publishing %s failed", self.room.id,
                              getattr(event, "topic", event))
                return
        self.inbox.append(event)
        self._inbox_wake.set()

    @property
    def backlogged(self) -> bool:
        """Whether the socket reader should wait (``wait_for_room``) before the next frame."""
        return len(self.inbox) >= INBOX_LIMIT

    async def wait_for_room(self) -> None:
        """Until the inbox is down to half its limit."""
        while len(self.inbox) > INBOX_LIMIT // 2:
            self._inbox_room.clear()
            await self._inbox_room.wait()

    async def dispatch(self) -> None:
        inbox = self.inbox
        self._dispatching = True  # until then (a room not started) events wait in the inbox
        try:
            while True:
                if not inbox:
                    self._inbox_wake.clear()
                    await self._inbox_wake.wait()
                    continue
                event = inbox.popleft()
                if len(inbox) <= INBOX_LIMIT // 2 and not self._inbox_room.is_set():
                    self._inbox_room.set()
                self._publishing = True  # a newer event must not overtake this one
                try:
                    await self.room.bus.publish(event)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("room %s: publishing %s failed", self.room.id,
                                  getattr(event, "topic", event))
                finally:
                    self._publishing = False
        finally:
            self._dispatching = False

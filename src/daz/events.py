"""Bus-level event base classes.

Every object published on the bus is an ``Event``. Its ``topic`` is what subscribers match on
(exact, or a pattern such as ``cytube.event.*``) and its ``room_key`` decides ordering: the bus
delivers events with the same room key to each subscriber in the order they were published.

CyTube events live in ``daz.cytube.events``; events daz itself raises (room lifecycle, command
outcomes) live here so that plugins can depend on them without importing the connection code.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(slots=True, kw_only=True)
class Event:
    """Anything published on the bus."""

    topic_name: ClassVar[str] = "daz.event"

    @property
    def topic(self) -> str:
        return self.topic_name

    @property
    def room_key(self) -> str:
        """Ordering key: events of one room are delivered in order; others share the '' lane."""
        return ""


@dataclass(slots=True, kw_only=True)
class RoomEvent(Event):
    """An event that belongs to one configured room."""

    room_id: str
    channel: str
    received_at: float = field(default_factory=time.time)

    @property
    def room_key(self) -> str:
        return self.room_id


@dataclass(slots=True, kw_only=True)
class RoomConnected(RoomEvent):
    """The socket.io connection to the room's server is up (not yet logged in)."""

    topic_name: ClassVar[str] = "daz.room.connected"
    reconnect: bool = False


@dataclass(slots=True, kw_only=True)
class RoomJoined(RoomEvent):
    """Logged in and joined: the join burst (history replay, userlist, playlist) is over.

    ``reconnect`` is true when this is not the first join of this process, so plugins can tell a
    resync after a network flap from a fresh start.
    """

    topic_name: ClassVar[str] = "daz.room.joined"
    bot_name: str = ""
    reconnect: bool = False


@dataclass(slots=True, kw_only=True)
class RoomDisconnected(RoomEvent):
    topic_name: ClassVar[str] = "daz.room.disconnected"
    reason: str = ""
    will_retry: bool = True


@dataclass(slots=True, kw_only=True)
class MessageSent(RoomEvent):
    """The outbox handed a chat line or PM to the server."""

    topic_name: ClassVar[str] = "daz.room.sent"
    text: str
    to: str | None = None  # recipient for a PM, None for public chat
    sent_at: float = field(default_factory=time.time)


@dataclass(slots=True, kw_only=True)
class CommandExecuted(RoomEvent):
    """Raised by the command dispatcher after every attempt (ran, refused or failed)."""

    topic_name: ClassVar[str] = "daz.command.executed"
    command: str
    username: str
    args: list[str]
    via_pm: bool
    outcome: str  # "ok", "rank", "cooldown", "usage", "disabled", "error", "unknown"
    detail: str = ""
    duration_ms: float = 0.0


@dataclass(slots=True, kw_only=True)
class PluginEvent(Event):
    """A free-form event one plugin raises for others (``plugin.<name>.<what>``)."""

    topic_name: ClassVar[str] = "plugin.event"
    name: str
    room_id: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def topic(self) -> str:
        return self.name

    @property
    def room_key(self) -> str:
        return self.room_id

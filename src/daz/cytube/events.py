"""Typed models for every event a CyTube server sends (shapes as a live server sends them).

Parsing is deliberately forgiving: a field of the wrong type falls back to its default and the
reason is kept in ``malformed``; unknown fields stay available in ``payload``. An event is never
dropped because a server sent something unexpected (a fractional rank must not cost a whole
userlist; see docs/upgrading-from-go.md). Plain dataclasses rather than pydantic models: this is
the hot path (tens of thousands of events per second) and we want defaults-on-error rather than
validation errors.

An event model is a subclass of ``CytubeEvent`` with the CyTube event ``name`` it stands for and
a ``fields`` table saying where each attribute comes from in the payload (event_fields.py);
defining the class registers it in ``EVENT_TYPES``, and ``parse_event`` reads every model
through the same table-driven parser. The nested value objects (User, Media, PlaylistItem) live
in values.py and are imported here, so ``from daz.cytube.events import X`` works for every name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daz.cytube.chat_filters import typed_text
from daz.cytube.event_base import ANY_EVENT as ANY_EVENT  # re-exported: this module is the API
from daz.cytube.event_base import EVENT_TYPES as EVENT_TYPES
from daz.cytube.event_base import CytubeEvent
from daz.cytube.event_base import OtherEvent as OtherEvent
from daz.cytube.event_base import parse_event as parse_event
from daz.cytube.event_fields import (
    bare_flag,
    bare_number,
    bare_text,
    flag,
    list_of,
    nested,
    number,
    obj,
    position,
    short_number,
    short_text,
    table,
    text,
    whole,
)
from daz.cytube.values import Media, PlaylistItem, User

# --------------------------------------------------------------------------- chat


@dataclass(slots=True, kw_only=True)
class ChatMessage(CytubeEvent):
    name = "chatMsg"
    fields = table(msg=text("msg"), meta=obj("meta"), username=text("username"),
                   time=whole("time"))

    username: str = ""
    msg: str = ""  # the server's HTML (escaped, filtered, links as <a>), stored as it came
    text: str = ""  # what the person typed (chat_filters.typed_text), for everything else
    meta: dict = field(default_factory=dict)
    time: int = 0  # epoch milliseconds
    # Set centrally by the connection, so no plugin has to work them out:
    replayed: bool = False  # part of the join-time history replay
    own: bool = False  # the echo of something we said
    whisper: bool = False  # a "[server]" line
    shadow: bool = False  # shadow-muted: only we and mods see it

    @staticmethod
    def derive(values: dict[str, Any]) -> None:
        meta = values["meta"]
        values["text"] = typed_text(values["msg"])
        values["whisper"] = (values["username"] == "[server]"
                             or meta.get("addClass") == "server-whisper")
        values["shadow"] = bool(meta.get("shadow"))

    @property
    def ignored(self) -> bool:
        """True for lines nobody should react to (they are still logged)."""
        return self.replayed or self.own or self.whisper or self.shadow

    @property
    def said_at(self) -> float:
        """When the line was said, in epoch seconds. A live line: when we received it. A line
        from the join-time history replay was said earlier, maybe while daz was away: its
        CyTube time (never later than we received it, whatever the server's clock)."""
        if self.replayed and self.time > 0:
            return min(self.time / 1000, self.received_at)
        return self.received_at


@dataclass(slots=True, kw_only=True)
class PrivateMessage(CytubeEvent):
    """A PM. The server sends each PM to both sides, so ``own`` marks the echo of ours."""

    name = "pm"
    fields = table(msg=text("msg"), username=text("username"), to=text("to"),
                   meta=obj("meta"), time=whole("time"))

    username: str = ""
    to: str = ""
    msg: str = ""
    text: str = ""
    meta: dict = field(default_factory=dict)
    time: int = 0
    own: bool = False

    @staticmethod
    def derive(values: dict[str, Any]) -> None:
        values["text"] = typed_text(values["msg"])

    @property
    def ignored(self) -> bool:
        return self.own


# --------------------------------------------------------------------------- people


@dataclass(slots=True, kw_only=True)
class UserJoined(CytubeEvent):
    name = "addUser"
    fields = table(user=nested(User))

    user: User = field(default_factory=lambda: User(""))

    @property
    def username(self) -> str:
        return self.user.name


@dataclass(slots=True, kw_only=True)
class UserLeft(CytubeEvent):
    name = "userLeave"
    fields = table(username=text("name"))

    username: str = ""


@dataclass(slots=True, kw_only=True)
class UserList(CytubeEvent):
    """The full user list. Sent on join, and again when our rank crosses 2."""

    name = "userlist"
    fields = table(users=list_of(User, keep=lambda user: bool(user.name)))

    users: list[User] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class UserRankChanged(CytubeEvent):
    name = "setUserRank"
    fields = table(username=text("name"), rank=number("rank"))

    username: str = ""
    rank: float = 0


@dataclass(slots=True, kw_only=True)
class AfkChanged(CytubeEvent):
    name = "setAFK"
    fields = table(username=text("name"), afk=flag("afk"))

    username: str = ""
    afk: bool = False


@dataclass(slots=True, kw_only=True)
class UserMetaChanged(CytubeEvent):
    name = "setUserMeta"
    fields = table(username=text("name"), meta=obj("meta"))

    username: str = ""
    meta: dict = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class UserCount(CytubeEvent):
    name = "usercount"
    fields = table(count=bare_number("usercount", 0, int))

    count: int = 0


@dataclass(slots=True, kw_only=True)
class LeaderChanged(CytubeEvent):
    name = "setLeader"
    fields = table(username=bare_text())

    username: str = ""


# --------------------------------------------------------------------------- us


@dataclass(slots=True, kw_only=True)
class OwnRank(CytubeEvent):
    """Our own effective rank in the channel (may be fractional)."""

    name = "rank"
    fields = table(rank=bare_number("rank", -1))

    rank: float = -1


@dataclass(slots=True, kw_only=True)
class LoginResult(CytubeEvent):
    name = "login"
    fields = table(success=flag("success"), username=text("name"), guest=flag("guest"),
                   error=text("error"))

    success: bool = False
    username: str = ""
    guest: bool = False
    error: str = ""


@dataclass(slots=True, kw_only=True)
class Kicked(CytubeEvent):
    name = "kick"
    fields = table(reason=text("reason"))

    reason: str = ""


@dataclass(slots=True, kw_only=True)
class ErrorMessage(CytubeEvent):
    name = "errorMsg"
    fields = table(msg=text("msg"), code=text("code"))

    msg: str = ""
    code: str = ""


@dataclass(slots=True, kw_only=True)
class Cooldown(CytubeEvent):
    """The server dropped one of our messages for flooding; wait this long."""

    name = "cooldown"
    fields = table(milliseconds=bare_number("cooldown", 1000, lambda ms: max(0.0, ms)))

    milliseconds: float = 0


# --------------------------------------------------------------------------- media and playlist


@dataclass(slots=True, kw_only=True)
class MediaChanged(CytubeEvent):
    name = "changeMedia"
    fields = table(media=nested(Media), current_time=number("currentTime"),
                   paused=flag("paused"))

    media: Media = field(default_factory=lambda: Media(""))
    current_time: float = 0
    paused: bool = False


@dataclass(slots=True, kw_only=True)
class CurrentChanged(CytubeEvent):
    name = "setCurrent"
    fields = table(uid=bare_number("setCurrent", -1, int))

    uid: int = -1


@dataclass(slots=True, kw_only=True)
class MediaUpdate(CytubeEvent):
    name = "mediaUpdate"
    fields = table(current_time=number("currentTime"), paused=flag("paused"))

    current_time: float = 0
    paused: bool = False


@dataclass(slots=True, kw_only=True)
class PlaylistReplaced(CytubeEvent):
    """The whole playlist (join, reload, clear, shuffle)."""

    name = "playlist"
    fields = table(items=list_of(PlaylistItem, keep=lambda item: item.uid >= 0))

    items: list[PlaylistItem] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class MediaQueued(CytubeEvent):
    name = "queue"
    fields = table(item=nested(PlaylistItem, "item"), after=position("after"))

    item: PlaylistItem = field(default_factory=lambda: PlaylistItem(-1, Media("")))
    after: int | str = "append"  # uid it follows, or "prepend"


@dataclass(slots=True, kw_only=True)
class MediaDeleted(CytubeEvent):
    name = "delete"
    short_form = short_number("uid")
    fields = table(uid=whole("uid", -1))

    uid: int = -1


@dataclass(slots=True, kw_only=True)
class MediaMoved(CytubeEvent):
    name = "moveVideo"
    fields = table(uid=whole("from", -1), after=position("after"))

    uid: int = -1  # the server calls it "from"; it is a uid, not a position
    after: int | str = "append"


@dataclass(slots=True, kw_only=True)
class PlaylistMeta(CytubeEvent):
    name = "setPlaylistMeta"
    fields = table(count=whole("count"), raw_time=whole("rawTime"), time_text=text("time"))

    count: int = 0
    raw_time: int = 0
    time_text: str = ""


@dataclass(slots=True, kw_only=True)
class PlaylistLocked(CytubeEvent):
    name = "setPlaylistLocked"
    fields = table(locked=bare_flag())

    locked: bool = False


@dataclass(slots=True, kw_only=True)
class QueueFailed(CytubeEvent):
    name = "queueFail"
    short_form = short_text("msg")
    fields = table(msg=text("msg"), link=text("link"), media_id=text("id"))

    msg: str = ""
    link: str = ""
    media_id: str = ""


# --------------------------------------------------------------------------- the channel


@dataclass(slots=True, kw_only=True)
class MotdChanged(CytubeEvent):
    name = "setMotd"
    fields = table(motd=bare_text(wrapped_in="motd"))  # some servers wrap it

    motd: str = ""


@dataclass(slots=True, kw_only=True)
class ChannelOptions(CytubeEvent):
    name = "channelOpts"
    fields = table(options=obj())

    options: dict = field(default_factory=dict)

    @property
    def antiflood(self) -> bool:
        return bool(self.options.get("chat_antiflood"))


@dataclass(slots=True, kw_only=True)
class PermissionsChanged(CytubeEvent):
    name = "setPermissions"
    fields = table(permissions=obj())

    permissions: dict = field(default_factory=dict)



__all__ = [name for name in dir() if not name.startswith("_")]

"""Typed models for every event a CyTube server sends (shapes from the live captures).

Parsing is deliberately forgiving: a field of the wrong type falls back to its default and the
reason is kept in ``malformed``; unknown fields stay available in ``payload``. An event is never
dropped because a server sent something unexpected (the Go bot lost whole userlists to a rank of
1.5). Plain dataclasses rather than pydantic models: this is the hot path (tens of thousands of
events per second) and we want defaults-on-error rather than validation errors.

The field reader lives in payload_reader.py and the nested value objects (User, Media,
PlaylistItem) in values.py; they are imported here so ``from daz.cytube.events import X`` keeps
working for every name.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from daz.cytube.chat_filters import typed_text
from daz.cytube.payload_reader import PayloadReader, read_number
from daz.cytube.values import Media, PlaylistItem, User
from daz.events import RoomEvent


def _after(value: Any) -> int | str:
    """``after`` in queue/moveVideo: a uid, or "prepend"/"append"."""
    if isinstance(value, bool):
        return "append"
    if isinstance(value, (int, float)):
        try:
            return int(value)
        except (OverflowError, ValueError):  # inf / nan
            return "append"
    if isinstance(value, str):
        if value in ("prepend", "append"):
            return value
        try:
            return int(value)
        except ValueError:
            return "append"
    return "append"


# --------------------------------------------------------------------------- events


@dataclass(slots=True, kw_only=True)
class CytubeEvent(RoomEvent):
    """One event received from a CyTube server, with the payload exactly as it arrived."""

    name: ClassVar[str] = ""
    event_name: str = ""
    payload: Any = None
    seq: int = 0  # per-room arrival order
    malformed: str | None = None

    @property
    def topic(self) -> str:
        return "cytube.event." + self.event_name

    @classmethod
    def parse_fields(cls, payload: Any, problems: list[str]) -> dict:
        return {}


@dataclass(slots=True, kw_only=True)
class ChatMessage(CytubeEvent):
    name: ClassVar[str] = "chatMsg"
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

    @property
    def ignored(self) -> bool:
        """True for lines nobody should react to (they are still logged)."""
        return self.replayed or self.own or self.whisper or self.shadow

    @property
    def said_at(self) -> float:
        """When the line was said, in epoch seconds. A live line: when we received it (as Go
        did). A line from the join-time history replay was said earlier, maybe while daz was
        away: its CyTube time (never later than we received it, whatever the server's clock)."""
        if self.replayed and self.time > 0:
            return min(self.time / 1000, self.received_at)
        return self.received_at

    @classmethod
    def parse_fields(cls, payload, problems):
        r = PayloadReader(payload)
        msg = r.str("msg")
        meta = r.dict("meta")
        username = r.str("username")
        problems.extend(r.problems)
        return dict(
            username=username, msg=msg, text=typed_text(msg), meta=meta, time=r.int("time"),
            whisper=username == "[server]" or meta.get("addClass") == "server-whisper",
            shadow=bool(meta.get("shadow")),
        )


@dataclass(slots=True, kw_only=True)
class PrivateMessage(CytubeEvent):
    """A PM. The server sends each PM to both sides, so ``own`` marks the echo of ours."""

    name: ClassVar[str] = "pm"
    username: str = ""
    to: str = ""
    msg: str = ""
    text: str = ""
    meta: dict = field(default_factory=dict)
    time: int = 0
    own: bool = False

    @property
    def ignored(self) -> bool:
        return self.own

    @classmethod
    def parse_fields(cls, payload, problems):
        r = PayloadReader(payload)
        msg = r.str("msg")
        out = dict(username=r.str("username"), to=r.str("to"), msg=msg, text=typed_text(msg),
                   meta=r.dict("meta"), time=r.int("time"))
        problems.extend(r.problems)
        return out


@dataclass(slots=True, kw_only=True)
class UserJoined(CytubeEvent):
    name: ClassVar[str] = "addUser"
    user: User = field(default_factory=lambda: User(""))

    @property
    def username(self) -> str:
        return self.user.name

    @classmethod
    def parse_fields(cls, payload, problems):
        return dict(user=User.parse(payload, problems))


@dataclass(slots=True, kw_only=True)
class UserLeft(CytubeEvent):
    name: ClassVar[str] = "userLeave"
    username: str = ""

    @classmethod
    def parse_fields(cls, payload, problems):
        r = PayloadReader(payload)
        out = dict(username=r.str("name"))
        problems.extend(r.problems)
        return out


@dataclass(slots=True, kw_only=True)
class UserList(CytubeEvent):
    """The full user list. Sent on join, and again when our rank crosses 2."""

    name: ClassVar[str] = "userlist"
    users: list[User] = field(default_factory=list)

    @classmethod
    def parse_fields(cls, payload, problems):
        if not isinstance(payload, list):
            problems.append(f"expected a list, got {type(payload).__name__}")
            return dict(users=[])
        users = [User.parse(u, problems) for u in payload]
        return dict(users=[u for u in users if u.name])


@dataclass(slots=True, kw_only=True)
class UserRankChanged(CytubeEvent):
    name: ClassVar[str] = "setUserRank"
    username: str = ""
    rank: float = 0

    @classmethod
    def parse_fields(cls, payload, problems):
        r = PayloadReader(payload)
        out = dict(username=r.str("name"), rank=r.num("rank"))
        problems.extend(r.problems)
        return out


@dataclass(slots=True, kw_only=True)
class AfkChanged(CytubeEvent):
    name: ClassVar[str] = "setAFK"
    username: str = ""
    afk: bool = False

    @classmethod
    def parse_fields(cls, payload, problems):
        r = PayloadReader(payload)
        out = dict(username=r.str("name"), afk=r.bool("afk"))
        problems.extend(r.problems)
        return out


@dataclass(slots=True, kw_only=True)
class UserMetaChanged(CytubeEvent):
    name: ClassVar[str] = "setUserMeta"
    username: str = ""
    meta: dict = field(default_factory=dict)

    @classmethod
    def parse_fields(cls, payload, problems):
        r = PayloadReader(payload)
        out = dict(username=r.str("name"), meta=r.dict("meta"))
        problems.extend(r.problems)
        return out


@dataclass(slots=True, kw_only=True)
class UserCount(CytubeEvent):
    name: ClassVar[str] = "usercount"
    count: int = 0

    @classmethod
    def parse_fields(cls, payload, problems):
        return dict(count=int(read_number(payload, 0, "usercount", problems)))


@dataclass(slots=True, kw_only=True)
class OwnRank(CytubeEvent):
    """Our own effective rank in the channel (may be fractional)."""

    name: ClassVar[str] = "rank"
    rank: float = -1

    @classmethod
    def parse_fields(cls, payload, problems):
        return dict(rank=read_number(payload, -1, "rank", problems))


@dataclass(slots=True, kw_only=True)
class LoginResult(CytubeEvent):
    name: ClassVar[str] = "login"
    success: bool = False
    username: str = ""
    guest: bool = False
    error: str = ""

    @classmethod
    def parse_fields(cls, payload, problems):
        r = PayloadReader(payload)
        out = dict(success=r.bool("success"), username=r.str("name"), guest=r.bool("guest"),
                   error=r.str("error"))
        problems.extend(r.problems)
        return out


@dataclass(slots=True, kw_only=True)
class MediaChanged(CytubeEvent):
    name: ClassVar[str] = "changeMedia"
    media: Media = field(default_factory=lambda: Media(""))
    current_time: float = 0
    paused: bool = False

    @classmethod
    def parse_fields(cls, payload, problems):
        r = PayloadReader(payload)
        out = dict(media=Media.parse(payload, problems), current_time=r.num("currentTime"),
                   paused=r.bool("paused"))
        problems.extend(r.problems)
        return out


@dataclass(slots=True, kw_only=True)
class CurrentChanged(CytubeEvent):
    name: ClassVar[str] = "setCurrent"
    uid: int = -1

    @classmethod
    def parse_fields(cls, payload, problems):
        return dict(uid=int(read_number(payload, -1, "setCurrent", problems)))


@dataclass(slots=True, kw_only=True)
class MediaUpdate(CytubeEvent):
    name: ClassVar[str] = "mediaUpdate"
    current_time: float = 0
    paused: bool = False

    @classmethod
    def parse_fields(cls, payload, problems):
        r = PayloadReader(payload)
        out = dict(current_time=r.num("currentTime"), paused=r.bool("paused"))
        problems.extend(r.problems)
        return out


@dataclass(slots=True, kw_only=True)
class PlaylistReplaced(CytubeEvent):
    """The whole playlist (join, reload, clear, shuffle)."""

    name: ClassVar[str] = "playlist"
    items: list[PlaylistItem] = field(default_factory=list)

    @classmethod
    def parse_fields(cls, payload, problems):
        if not isinstance(payload, list):
            problems.append(f"expected a list, got {type(payload).__name__}")
            return dict(items=[])
        items = [PlaylistItem.parse(i, problems) for i in payload]
        return dict(items=[i for i in items if i.uid >= 0])


@dataclass(slots=True, kw_only=True)
class MediaQueued(CytubeEvent):
    name: ClassVar[str] = "queue"
    item: PlaylistItem = field(default_factory=lambda: PlaylistItem(-1, Media("")))
    after: int | str = "append"  # uid it follows, or "prepend"

    @classmethod
    def parse_fields(cls, payload, problems):
        r = PayloadReader(payload)
        out = dict(item=PlaylistItem.parse(r.dict("item"), problems),
                   after=_after(r.data.get("after")))
        problems.extend(r.problems)
        return out


@dataclass(slots=True, kw_only=True)
class MediaDeleted(CytubeEvent):
    name: ClassVar[str] = "delete"
    uid: int = -1

    @classmethod
    def parse_fields(cls, payload, problems):
        if isinstance(payload, (int, float)) and not isinstance(payload, bool):
            return dict(uid=int(payload))
        r = PayloadReader(payload)
        out = dict(uid=r.int("uid", -1))
        problems.extend(r.problems)
        return out


@dataclass(slots=True, kw_only=True)
class MediaMoved(CytubeEvent):
    name: ClassVar[str] = "moveVideo"
    uid: int = -1  # the server calls it "from"; it is a uid, not a position
    after: int | str = "append"

    @classmethod
    def parse_fields(cls, payload, problems):
        r = PayloadReader(payload)
        out = dict(uid=r.int("from", -1), after=_after(r.data.get("after")))
        problems.extend(r.problems)
        return out


@dataclass(slots=True, kw_only=True)
class PlaylistMeta(CytubeEvent):
    name: ClassVar[str] = "setPlaylistMeta"
    count: int = 0
    raw_time: int = 0
    time_text: str = ""

    @classmethod
    def parse_fields(cls, payload, problems):
        r = PayloadReader(payload)
        out = dict(count=r.int("count"), raw_time=r.int("rawTime"), time_text=r.str("time"))
        problems.extend(r.problems)
        return out


@dataclass(slots=True, kw_only=True)
class PlaylistLocked(CytubeEvent):
    name: ClassVar[str] = "setPlaylistLocked"
    locked: bool = False

    @classmethod
    def parse_fields(cls, payload, problems):
        if not isinstance(payload, bool):
            problems.append(f"expected true/false, got {type(payload).__name__}")
        return dict(locked=bool(payload) if isinstance(payload, bool) else False)


@dataclass(slots=True, kw_only=True)
class MotdChanged(CytubeEvent):
    name: ClassVar[str] = "setMotd"
    motd: str = ""

    @classmethod
    def parse_fields(cls, payload, problems):
        if isinstance(payload, dict):  # some servers wrap it
            payload = payload.get("motd", "")
        if not isinstance(payload, str):
            problems.append(f"expected text, got {type(payload).__name__}")
            payload = ""
        return dict(motd=payload)


@dataclass(slots=True, kw_only=True)
class ChannelOptions(CytubeEvent):
    name: ClassVar[str] = "channelOpts"
    options: dict = field(default_factory=dict)

    @property
    def antiflood(self) -> bool:
        return bool(self.options.get("chat_antiflood"))

    @classmethod
    def parse_fields(cls, payload, problems):
        r = PayloadReader(payload)
        problems.extend(r.problems)
        return dict(options=dict(r.data))


@dataclass(slots=True, kw_only=True)
class PermissionsChanged(CytubeEvent):
    name: ClassVar[str] = "setPermissions"
    permissions: dict = field(default_factory=dict)

    @classmethod
    def parse_fields(cls, payload, problems):
        r = PayloadReader(payload)
        problems.extend(r.problems)
        return dict(permissions=dict(r.data))


@dataclass(slots=True, kw_only=True)
class Kicked(CytubeEvent):
    name: ClassVar[str] = "kick"
    reason: str = ""

    @classmethod
    def parse_fields(cls, payload, problems):
        r = PayloadReader(payload)
        out = dict(reason=r.str("reason"))
        problems.extend(r.problems)
        return out


@dataclass(slots=True, kw_only=True)
class ErrorMessage(CytubeEvent):
    name: ClassVar[str] = "errorMsg"
    msg: str = ""
    code: str = ""

    @classmethod
    def parse_fields(cls, payload, problems):
        r = PayloadReader(payload)
        out = dict(msg=r.str("msg"), code=r.str("code"))
        problems.extend(r.problems)
        return out


@dataclass(slots=True, kw_only=True)
class Cooldown(CytubeEvent):
    """The server dropped one of our messages for flooding; wait this long."""

    name: ClassVar[str] = "cooldown"
    milliseconds: float = 0

    @classmethod
    def parse_fields(cls, payload, problems):
        return dict(milliseconds=max(0.0, read_number(payload, 1000, "cooldown", problems)))


@dataclass(slots=True, kw_only=True)
class QueueFailed(CytubeEvent):
    name: ClassVar[str] = "queueFail"
    msg: str = ""
    link: str = ""
    media_id: str = ""

    @classmethod
    def parse_fields(cls, payload, problems):
        if isinstance(payload, str):
            return dict(msg=payload)
        r = PayloadReader(payload)
        out = dict(msg=r.str("msg"), link=r.str("link"), media_id=r.str("id"))
        problems.extend(r.problems)
        return out


@dataclass(slots=True, kw_only=True)
class LeaderChanged(CytubeEvent):
    name: ClassVar[str] = "setLeader"
    username: str = ""

    @classmethod
    def parse_fields(cls, payload, problems):
        if not isinstance(payload, str):
            problems.append(f"expected text, got {type(payload).__name__}")
            payload = ""
        return dict(username=payload)


@dataclass(slots=True, kw_only=True)
class OtherEvent(CytubeEvent):
    """Any event without a model of its own (emoteList, drinkCount, voteskip, newPoll, ...)."""

    name: ClassVar[str] = "*"


EVENT_TYPES: dict[str, type[CytubeEvent]] = {
    cls.name: cls
    for cls in (
        ChatMessage, PrivateMessage, UserJoined, UserLeft, UserList, UserRankChanged, AfkChanged,
        UserMetaChanged, UserCount, OwnRank, LoginResult, MediaChanged, CurrentChanged, MediaUpdate,
        PlaylistReplaced, MediaQueued, MediaDeleted, MediaMoved, PlaylistMeta, PlaylistLocked,
        MotdChanged, ChannelOptions, PermissionsChanged, Kicked, ErrorMessage, Cooldown,
        QueueFailed, LeaderChanged,
    )
}

_NAME_OK = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def parse_event(event_name: Any, payload: Any, *, room_id: str, channel: str, seq: int = 0,
                received_at: float | None = None) -> CytubeEvent:
    """Build the typed event for one frame. Never raises for any payload."""
    if not isinstance(event_name, str) or not _NAME_OK.match(event_name):
        shown = event_name if isinstance(event_name, str) else type(event_name).__name__
        bad_name = str(shown)[:40]
        event_name = "invalid"
        problems = [f"invalid event name {bad_name!r}"]
        cls: type[CytubeEvent] = OtherEvent
    else:
        cls = EVENT_TYPES.get(event_name, OtherEvent)
        problems = []
    try:
        fields = cls.parse_fields(payload, problems)
    except Exception as exc:  # a parser bug must not lose the event
        problems.append(f"parser error: {exc!r}"[:200])
        fields = {}
    extra = {"received_at": received_at} if received_at is not None else {}
    return cls(room_id=room_id, channel=channel, event_name=event_name, payload=payload, seq=seq,
               malformed="; ".join(problems)[:500] if problems else None, **fields, **extra)


__all__ = [name for name in dir() if not name.startswith("_")]

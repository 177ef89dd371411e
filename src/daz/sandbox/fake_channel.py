"""State of one channel on the fake CyTube server: who is in it, ranks, playlist, options, chat
history, and what the server delivered (for test assertions). No I/O here."""
from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from daz.cytube.chat_filters import DEFAULT_FILTERS, ChatFilter
from daz.sandbox.chat_format import format_duration
from daz.sandbox.limits import ChatThrottle

REGISTERED_PERMISSIONS: dict[str, float] = {
    "seeplaylist": -1, "playlistadd": 1.5, "playlistnext": 1.5, "playlistmove": 1.5,
    "playlistdelete": 2, "playlistjump": 1.5, "playlistaddlist": 1.5, "oplaylistadd": -1,
    "oplaylistnext": 1.5, "oplaylistmove": 1.5, "oplaylistdelete": 2, "oplaylistjump": 1.5,
    "oplaylistaddlist": 1.5, "playlistaddcustom": 3, "playlistaddrawfile": 2,
    "playlistaddlive": 1.5, "exceedmaxlength": 2, "addnontemp": 2, "settemp": 2,
    "playlistshuffle": 2, "playlistclear": 2, "pollctl": 1.5, "pollvote": -1,
    "viewhiddenpoll": 1.5, "voteskip": -1, "viewvoteskip": 1.5, "mute": 1.5, "kick": 1.5,
    "ban": 2, "motdedit": 3, "filteredit": 3, "filterimport": 3, "emoteedit": 3,
    "emoteimport": 3, "playlistlock": 2, "leaderctl": 2, "drink": 1.5, "chat": 0,
    "chatclear": 2, "exceedmaxitems": 2, "deletefromchannellib": 2,
    "exceedmaxdurationperuser": 2,
}
_OPEN = {"playlistadd": -1, "oplaylistadd": -1, "seeplaylist": -1, "pollvote": -1, "voteskip": -1}
UNREGISTERED_PERMISSIONS: dict[str, float] = {key: _OPEN.get(key, 0)
                                              for key in REGISTERED_PERMISSIONS}

DEFAULT_OPTIONS: dict[str, Any] = {
    "allow_voteskip": True, "voteskip_ratio": 0.5, "afk_timeout": 600,
    "pagetitle": "Test Channel", "maxlength": 0, "externalcss": "", "externaljs": "",
    "chat_antiflood": False, "chat_antiflood_params": {"burst": 4, "sustained": 1, "cooldown": 4},
    "show_public": False, "enable_link_regex": True, "password": False, "allow_dupes": False,
    "torbanned": False, "block_anonymous_users": False, "allow_ascii_control": False,
    "playlist_max_per_user": 0, "new_user_chat_delay": 0, "new_user_chat_link_delay": 0,
    "playlist_max_duration_per_user": 0,
}
EMPTY_HASH = "1B2M2Y8AsgTpgAmY7PhCfg=="  # base64 md5 of "", as the real server sends


@dataclass
class Member:
    """One socket in the channel; ``name`` is None until it logs in."""
    sid: str
    ip: str
    throttle: ChatThrottle
    queue_throttle: ChatThrottle
    name: str | None = None
    rank: float = -1
    guest: bool = False
    afk: bool = False
    muted: bool = False

    @property
    def logged_in(self) -> bool:
        return self.name is not None


@dataclass
class PlaylistEntry:
    uid: int
    media: dict
    temp: bool = False
    queueby: str = ""

    def payload(self) -> dict:
        return {"media": copy.deepcopy(self.media), "uid": self.uid, "temp": self.temp,
                "queueby": self.queueby}


def normalise_media(media: dict) -> dict:
    """A media object as the server sends it: id, title, seconds, duration, type, meta."""
    media_type = str(media.get("type", "cu"))
    seconds = media.get("seconds", media.get("duration", 0))
    try:
        seconds = float(seconds) if not isinstance(seconds, str) else float(seconds or 0)
    except ValueError:
        seconds = 0.0
    seconds = int(seconds) if float(seconds).is_integer() else seconds
    media_id = str(media.get("id", ""))
    if media_type == "cu" and not media_id.startswith("cu:"):
        media_id = custom_embed_id(media_id)
    return {"id": media_id, "title": str(media.get("title", media_id)), "seconds": seconds,
            "duration": format_duration(seconds, media_type), "type": media_type,
            "meta": copy.deepcopy(media.get("meta", {}))}


def custom_embed_id(embed_html: str) -> str:
    digest = hashlib.sha256(embed_html.encode("utf-8", "surrogatepass")).digest()
    return "cu:" + base64.b64encode(digest).decode("ascii")


def cloak_ip(ip: str) -> str:
    parts = ip.split(".")
    out, seed = [], ""
    for index, part in enumerate(parts):
        seed += part
        out.append(base64.b64encode(hashlib.md5(f"{seed}{index}".encode()).digest()).decode()[:3])
    return ".".join(out)


class FakeChannel:
    def __init__(self, name: str, *, history_size: int = 15, registered: bool = True):
        self.name = name
        self.registered = registered
        self.permissions = dict(REGISTERED_PERMISSIONS if registered else UNREGISTERED_PERMISSIONS)
        self.options: dict[str, Any] = copy.deepcopy(DEFAULT_OPTIONS)
        self.motd = f"Welcome to <b>{name}</b>!"
        # A new channel's chat filters, in order; its owner may change or remove them.
        self.filters: list[ChatFilter] = list(DEFAULT_FILTERS)
        self.playlist_locked = registered
        self.members: dict[str, Member] = {}
        self.ranks: dict[str, float] = {}          # lower-case account name → channel rank
        self.history: deque[dict] = deque(maxlen=history_size)
        self.playlist: list[PlaylistEntry] = []
        self.current_uid: int | None = None
        self.current_time: float = 0.0
        self.paused: bool = False
        self.next_uid = 1
        self.chat_log: list[dict] = []            # every chatMsg broadcast, with the typed text
        self.dropped: Counter[str] = Counter()     # lower-case name → messages the throttle dropped
        self.usercount_last = float("-inf")        # loop time of the last usercount broadcast
        self.usercount_timer: asyncio.TimerHandle | None = None
        self.playback_timer: asyncio.TimerHandle | None = None
        self.playback_origin = 0.0                 # loop time at which currentTime was 0

    # ------------------------------------------------------------------ users
    @property
    def users(self) -> list[Member]:
        """Logged-in members, in join order."""
        return [m for m in self.members.values() if m.logged_in]

    def find(self, name: str) -> Member | None:
        lower = name.lower()
        for member in self.members.values():
            if member.name is not None and member.name.lower() == lower:
                return member
        return None

    def user_payload(self, member: Member, viewer_rank: float) -> dict:
        return {"name": member.name, "rank": member.rank,
                "profile": {"image": "", "text": ""}, "meta": self.user_meta(member, viewer_rank)}

    def user_meta(self, member: Member, viewer_rank: float) -> dict:
        meta: dict[str, Any] = {"afk": member.afk, "muted": member.muted}
        if viewer_rank >= 2:
            meta.update({"smuted": False, "aliases": [member.name], "ip": cloak_ip(member.ip)})
        return meta

    def userlist(self, viewer_rank: float) -> list[dict]:
        return [self.user_payload(m, viewer_rank) for m in self.users]

    # --------------------------------------------------------------- playlist
    def entry(self, uid: Any) -> PlaylistEntry | None:
        return next((e for e in self.playlist if e.uid == uid), None)

    def index_of(self, uid: Any) -> int:
        return next((i for i, e in enumerate(self.playlist) if e.uid == uid), -1)

    @property
    def current(self) -> PlaylistEntry | None:
        return self.entry(self.current_uid) if self.current_uid is not None else None

    def playlist_payload(self) -> list[dict]:
        return [e.payload() for e in self.playlist]

    def playlist_meta(self) -> dict:
        raw = sum(e.media.get("seconds") or 0 for e in self.playlist)
        raw = int(raw) if float(raw).is_integer() else raw
        return {"count": len(self.playlist), "rawTime": raw,
                "time": format_duration(raw) if raw else "00:00"}

    def insert(self, media: dict, *, after: Any = "end", temp: bool = False,
               queueby: str = "") -> tuple[PlaylistEntry, int | str]:
        """Add an item; returns it and the ``after`` value the queue event carries."""
        entry = PlaylistEntry(self.next_uid, normalise_media(media), bool(temp), queueby)
        self.next_uid += 1
        if after == "next":
            after = self.current_uid if self.current is not None else "end"
        if after == "prepend" or (after == "end" and not self.playlist):
            index = 0
        elif after == "end":
            index = len(self.playlist)
        else:
            found = self.index_of(after)
            index = found + 1 if found >= 0 else len(self.playlist)
        self.playlist.insert(index, entry)
        return entry, (self.playlist[index - 1].uid if index > 0 else "prepend")

    def remove(self, uid: Any) -> PlaylistEntry | None:
        index = self.index_of(uid)
        return self.playlist.pop(index) if index >= 0 else None

    def move(self, uid: Any, after: Any) -> bool:
        entry = self.remove(uid)
        if entry is None:
            return False
        if after == "prepend":
            self.playlist.insert(0, entry)
        else:
            found = self.index_of(after)
            self.playlist.insert(found + 1 if found >= 0 else len(self.playlist), entry)
        return True

    def after_current(self) -> PlaylistEntry | None:
        """The item that plays next (wrapping round), or None with an empty playlist."""
        if not self.playlist:
            return None
        index = self.index_of(self.current_uid)
        return self.playlist[(index + 1) % len(self.playlist)] if index >= 0 else self.playlist[0]

    def change_media_payload(self) -> dict | None:
        entry = self.current
        if entry is None:
            return None
        payload = copy.deepcopy(entry.media)
        payload.update({"currentTime": self.current_time, "paused": self.paused})
        return payload

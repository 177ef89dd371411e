"""RoomState: what daz knows about one channel right now.

The connection applies every event here *before* publishing it, so a plugin handling an event
sees the state that includes it (a command's rank comes from here, never from the chat payload,
which has no rank). Names are compared as CyTube compares them: ASCII letters case-insensitively,
nothing else folded (``name_key``).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from daz.cytube import events as ev
from daz.cytube.values import User

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def name_key(name: str) -> str:
    """How CyTube tells names apart: case-insensitive for ASCII letters only. ``str.lower``
    would also fold e.g. the Kelvin sign (U+212A) to "k", so "\u212aate" would pass for "kate"."""
    return name.translate(_ASCII_LOWER)


class RoomState:
    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.users: dict[str, User] = {}  # key: name_key(name); the state's own copies
        self.playlist: dict[int, ev.PlaylistItem] = {}  # by uid
        self.order: list[int] = []  # uids in playlist order
        self.current_uid: int | None = None
        self.current_media: ev.Media | None = None
        self.current_time: float = 0.0
        self.paused: bool = False
        self.media_started_at: float | None = None
        self.options: dict = {}
        self.permissions: dict = {}
        self.motd: str = ""
        self.usercount: int = 0
        self.playlist_locked: bool = False
        self.leader: str = ""
        self.bot_name: str = ""
        self.bot_rank: float = -1
        self.guest: bool = False
        self.logged_in: bool = False
        self.joined: bool = False  # the join burst is over (first userlist seen after login)

    # ------------------------------------------------------------------ queries

    def user(self, name: str) -> User | None:
        return self.users.get(name_key(name))

    def is_present(self, name: str) -> bool:
        return name_key(name) in self.users

    def rank_of(self, name: str) -> float:
        """Rank of a user in the room; -1 when they are not here."""
        user = self.users.get(name_key(name))
        return user.rank if user else -1

    def is_self(self, name: str) -> bool:
        return bool(self.bot_name) and name_key(name) == name_key(self.bot_name)

    @property
    def antiflood(self) -> tuple[int, float] | None:
        """(burst, sustained per second) the server applies to our chat, None for the default."""
        if not self.options.get("chat_antiflood") or self.bot_rank >= 2:
            return None
        params = self.options.get("chat_antiflood_params")
        if not isinstance(params, dict):
            params = {}
        try:
            burst = int(params.get("burst", 4))
            sustained = float(params.get("sustained", 1))
        except (TypeError, ValueError, OverflowError):
            return (4, 1.0)
        if sustained != sustained:  # NaN
            sustained = 1.0
        return (max(1, min(burst, 20)), max(0.1, min(sustained, 10.0)))

    def playlist_items(self) -> list[ev.PlaylistItem]:
        return [self.playlist[uid] for uid in self.order if uid in self.playlist]

    # ------------------------------------------------------------------ updates

    def apply(self, event: ev.CytubeEvent) -> None:
        handler = _APPLY.get(type(event))
        if handler is not None:
            handler(self, event)

    def _user_list(self, e: ev.UserList) -> None:
        previous = self.users
        self.users = {}
        now = time.time()
        for u in e.users:
            old = previous.get(name_key(u.name))
            self.users[name_key(u.name)] = u.kept(old.seen_since if old else now)

    def _add_user(self, e: ev.UserJoined) -> None:
        u = e.user
        if not u.name:
            return
        self.users[name_key(u.name)] = u.kept(time.time())

    def _user_left(self, e: ev.UserLeft) -> None:
        self.users.pop(name_key(e.username), None)

    def _rank(self, e: ev.UserRankChanged) -> None:
        user = self.users.get(name_key(e.username))
        if user:
            user.rank = e.rank
        if self.is_self(e.username):
            self.bot_rank = e.rank

    def _afk(self, e: ev.AfkChanged) -> None:
        user = self.users.get(name_key(e.username))
        if user:
            user.afk = e.afk

    def _meta(self, e: ev.UserMetaChanged) -> None:
        user = self.users.get(name_key(e.username))
        if user:
            for key in ("afk", "muted", "smuted"):
                if isinstance(e.meta.get(key), bool):
                    setattr(user, key, e.meta[key])

    def _own_rank(self, e: ev.OwnRank) -> None:
        self.bot_rank = e.rank

    def _login(self, e: ev.LoginResult) -> None:
        if e.success:
            self.logged_in = True
            self.guest = e.guest
            if e.username:
                self.bot_name = e.username

    def _playlist(self, e: ev.PlaylistReplaced) -> None:
        # A uid listed twice keeps one place, so ``order`` and ``playlist`` always agree.
        self.playlist = {item.uid: item for item in e.items}
        self.order = list(self.playlist)

    def _queued(self, e: ev.MediaQueued) -> None:
        uid = e.item.uid
        if uid < 0:
            return
        if uid in self.playlist:
            self.order.remove(uid)
        self.playlist[uid] = e.item
        self._insert_after(uid, e.after)

    def _insert_after(self, uid: int, after: int | str) -> None:
        if after == "prepend":
            self.order.insert(0, uid)
        elif isinstance(after, int) and after in self.playlist and after != uid:
            self.order.insert(self.order.index(after) + 1, uid)
        else:
            self.order.append(uid)

    def _deleted(self, e: ev.MediaDeleted) -> None:
        if self.playlist.pop(e.uid, None) is not None:
            self.order.remove(e.uid)

    def _moved(self, e: ev.MediaMoved) -> None:
        if e.uid in self.playlist:
            self.order.remove(e.uid)
            self._insert_after(e.uid, e.after)

    def _current(self, e: ev.CurrentChanged) -> None:
        self.current_uid = e.uid

    def _media(self, e: ev.MediaChanged) -> None:
        self.current_media = e.media
        self.current_time = e.current_time
        self.paused = e.paused
        self.media_started_at = e.received_at

    def _media_update(self, e: ev.MediaUpdate) -> None:
        self.current_time = e.current_time
        self.paused = e.paused

    def _options(self, e: ev.ChannelOptions) -> None:
        self.options = e.options

    def _permissions(self, e: ev.PermissionsChanged) -> None:
        self.permissions = e.permissions

    def _motd(self, e: ev.MotdChanged) -> None:
        self.motd = e.motd

    def _count(self, e: ev.UserCount) -> None:
        self.usercount = e.count

    def _locked(self, e: ev.PlaylistLocked) -> None:
        self.playlist_locked = e.locked

    def _leader(self, e: ev.LeaderChanged) -> None:
        self.leader = e.username

    def reset_for_reconnect(self) -> None:
        """A new socket starts from nothing; the join burst rebuilds the state."""
        self.logged_in = False
        self.joined = False
        self.bot_rank = -1


_APPLY: dict[type[ev.CytubeEvent], Callable[[RoomState, Any], None]] = {
    ev.UserList: RoomState._user_list,
    ev.UserJoined: RoomState._add_user,
    ev.UserLeft: RoomState._user_left,
    ev.UserRankChanged: RoomState._rank,
    ev.AfkChanged: RoomState._afk,
    ev.UserMetaChanged: RoomState._meta,
    ev.OwnRank: RoomState._own_rank,
    ev.LoginResult: RoomState._login,
    ev.PlaylistReplaced: RoomState._playlist,
    ev.MediaQueued: RoomState._queued,
    ev.MediaDeleted: RoomState._deleted,
    ev.MediaMoved: RoomState._moved,
    ev.CurrentChanged: RoomState._current,
    ev.MediaChanged: RoomState._media,
    ev.MediaUpdate: RoomState._media_update,
    ev.ChannelOptions: RoomState._options,
    ev.PermissionsChanged: RoomState._permissions,
    ev.MotdChanged: RoomState._motd,
    ev.UserCount: RoomState._count,
    ev.PlaylistLocked: RoomState._locked,
    ev.LeaderChanged: RoomState._leader,
}

"""What Kryten clients read about a room: CyTube's own objects, kept as the server sent them.

daz's RoomState keeps typed values for plugins; Kryten clients want the raw CyTube objects
(the KV buckets of docs/scale-out.md, "The Kryten bridge"), so the bridge keeps this mirror
beside it, from the same events in the same order. ``apply`` returns the KV entries an event
changed, as (bucket kind, key) pairs; the KV writer coalesces them, so a burst of joins is one
write of the user list.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

USERS = ("userlist", "users")
ITEMS = ("playlist", "items")
CURRENT = ("playlist", "current")
EMOTES = ("emotes", "list")
MOTD, CSS, JS = ("state", "motd"), ("state", "css"), ("state", "js")
ALL_KEYS = (USERS, ITEMS, CURRENT, EMOTES, MOTD, CSS, JS)


def _uid(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _name(value: Any) -> str:
    return value.get("name", "") if isinstance(value, dict) and isinstance(
        value.get("name"), str) else ""


class RoomMirror:
    def __init__(self) -> None:
        self.users: list[dict] = []
        self.playlist: list[dict] = []
        self.current: dict | None = None
        self.current_uid: int | None = None
        self.emotes: list[dict] = []
        self.motd = ""
        self.css = ""
        self.js = ""
        self.options: dict = {}
        self.permissions: dict = {}

    # ------------------------------------------------------------------ reading

    def value(self, entry: tuple[str, str]) -> Any:
        """The KV value for ``entry``: JSON-ready, except motd/css/js, which are raw text."""
        return {USERS: lambda: self.users, ITEMS: lambda: self.playlist,
                CURRENT: lambda: self.current, EMOTES: lambda: self.emotes,
                MOTD: lambda: self.motd, CSS: lambda: self.css, JS: lambda: self.js}[entry]()

    def user(self, name: str) -> dict | None:
        wanted = name.lower()
        return next((u for u in self.users if _name(u).lower() == wanted), None)

    def profiles(self) -> dict[str, Any]:
        return {_name(u): u.get("profile", {}) for u in self.users if _name(u)}

    # ------------------------------------------------------------------ applying events

    def apply(self, event_name: str, payload: Any) -> tuple[tuple[str, str], ...]:
        handler = _HANDLERS.get(event_name)
        if handler is None:
            return ()
        return handler(self, payload) or ()

    def _userlist(self, payload: Any):
        if isinstance(payload, list):
            self.users = [dict(u) for u in payload if _name(u)]
            return (USERS,)

    def _add_user(self, payload: Any):
        name = _name(payload).lower()
        if name:
            self.users = [u for u in self.users if _name(u).lower() != name] + [dict(payload)]
            return (USERS,)

    def _user_leave(self, payload: Any):
        name = _name(payload).lower()
        if name:
            self.users = [u for u in self.users if _name(u).lower() != name]
            return (USERS,)

    def _update_user(self, change: Callable[[dict[str, Any], Any], None]
                     ) -> Callable[[Any], Any]:
        def apply(payload: Any) -> Any:
            found = self.user(_name(payload)) if _name(payload) else None
            if found is not None:
                change(found, payload)
                return (USERS,)
        return apply

    def _afk(self, user: dict, payload: dict) -> None:
        user.setdefault("meta", {})["afk"] = bool(payload.get("afk"))

    def _rank(self, user: dict, payload: dict) -> None:
        user["rank"] = payload.get("rank", user.get("rank"))

    def _meta(self, user: dict, payload: dict) -> None:
        if isinstance(payload.get("meta"), dict):
            user.setdefault("meta", {}).update(payload["meta"])

    def _profile(self, user: dict, payload: dict) -> None:
        if isinstance(payload.get("profile"), dict):
            user["profile"] = payload["profile"]

    def _playlist(self, payload: Any):
        if isinstance(payload, list):
            self.playlist = [dict(i) for i in payload if isinstance(i, dict)]
            return (ITEMS,)

    def _queue(self, payload: Any):
        if not isinstance(payload, dict) or not isinstance(payload.get("item"), dict):
            return None
        item, after = dict(payload["item"]), payload.get("after")
        uids = [_uid(i.get("uid")) for i in self.playlist]
        if after == "prepend":
            self.playlist.insert(0, item)
        elif _uid(after) in uids:
            self.playlist.insert(uids.index(_uid(after)) + 1, item)
        else:
            self.playlist.append(item)
        return (ITEMS,)

    def _delete(self, payload: Any):
        uid = _uid(payload.get("uid")) if isinstance(payload, dict) else None
        before = len(self.playlist)
        self.playlist = [i for i in self.playlist if _uid(i.get("uid")) != uid]
        return (ITEMS,) if len(self.playlist) != before else None

    def _move(self, payload: Any):
        if not isinstance(payload, dict):
            return None
        uid = _uid(payload.get("from"))
        item = next((i for i in self.playlist if _uid(i.get("uid")) == uid), None)
        if item is None:
            return None
        self.playlist.remove(item)
        return self._queue({"item": item, "after": payload.get("after")})

    def _temp(self, payload: Any):
        uid = _uid(payload.get("uid")) if isinstance(payload, dict) else None
        for item in self.playlist:
            if _uid(item.get("uid")) == uid:
                item["temp"] = bool(payload.get("temp"))
                return (ITEMS,)

    def _change_media(self, payload: Any):
        if not isinstance(payload, dict):
            return None
        self.current = copy.copy(payload)
        uid = self.current_uid
        if uid is None or not any(_uid(i.get("uid")) == uid and isinstance(i.get("media"), dict)
                                  and i["media"].get("id") == payload.get("id")
                                  for i in self.playlist):
            uid = next((_uid(i.get("uid")) for i in self.playlist
                        if isinstance(i.get("media"), dict)
                        and i["media"].get("id") == payload.get("id")), uid)
        self.current["uid"] = uid
        return (CURRENT,)

    def _set_current(self, payload: Any):
        self.current_uid = _uid(payload)
        if self.current is not None and self.current.get("uid") != self.current_uid:
            self.current["uid"] = self.current_uid
            return (CURRENT,)

    def _emote_list(self, payload: Any):
        if isinstance(payload, list):
            self.emotes = [dict(e) for e in payload if _name(e)]
            return (EMOTES,)

    def _update_emote(self, payload: Any):
        name = _name(payload)
        if name:
            self.emotes = [e for e in self.emotes if _name(e) != name] + [dict(payload)]
            return (EMOTES,)

    def _remove_emote(self, payload: Any):
        name = _name(payload)
        if name:
            self.emotes = [e for e in self.emotes if _name(e) != name]
            return (EMOTES,)

    def _motd(self, payload: Any):
        text = payload.get("motd") if isinstance(payload, dict) else payload
        if isinstance(text, str):
            self.motd = text
            return (MOTD,)

    def _css_js(self, payload: Any):
        if isinstance(payload, dict):
            self.css = str(payload.get("css") or "")
            self.js = str(payload.get("js") or "")
            return (CSS, JS)

    def _options(self, payload: Any):
        if isinstance(payload, dict):
            self.options = dict(payload)

    def _permissions(self, payload: Any):
        if isinstance(payload, dict):
            self.permissions = dict(payload)


_HANDLERS: dict[str, Callable[[RoomMirror, Any], Any]] = {
    "userlist": RoomMirror._userlist, "addUser": RoomMirror._add_user,
    "userLeave": RoomMirror._user_leave,
    "setAFK": lambda m, p: m._update_user(m._afk)(p),
    "setUserRank": lambda m, p: m._update_user(m._rank)(p),
    "setUserMeta": lambda m, p: m._update_user(m._meta)(p),
    "setUserProfile": lambda m, p: m._update_user(m._profile)(p),
    "playlist": RoomMirror._playlist, "queue": RoomMirror._queue,
    "delete": RoomMirror._delete, "moveVideo": RoomMirror._move, "setTemp": RoomMirror._temp,
    "changeMedia": RoomMirror._change_media, "setCurrent": RoomMirror._set_current,
    "emoteList": RoomMirror._emote_list, "updateEmote": RoomMirror._update_emote,
    "removeEmote": RoomMirror._remove_emote, "setMotd": RoomMirror._motd,
    "channelCSSJS": RoomMirror._css_js, "channelOpts": RoomMirror._options,
    "setPermissions": RoomMirror._permissions,
}

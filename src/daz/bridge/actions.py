"""Action commands on ``kryten.robot.command``: what each one sends to the room.

The table follows Kryten's command contract (argument names as kryten-py and the other
Kryten services send them), with the old bridge's gaps closed: ``chat``, ``searchMedia``,
``uncache``, ``setEmotes`` and ``unban`` by id work; a uid may be a number or a string; a
missing argument or an unknown command is an error reply, never silence.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class CommandError(ValueError):
    """The request cannot be carried out; the text goes back to the requester."""


def arg(args: dict, *names: str, default: Any = ..., kind: type | None = None) -> Any:
    for name in names:
        if name in args and args[name] is not None:
            value = args[name]
            break
    else:
        if default is ...:
            raise CommandError(f"missing argument {names[0]!r}")
        return default
    if kind is int:
        return as_int(value, names[0])
    if kind is str and not isinstance(value, str):
        raise CommandError(f"argument {names[0]!r} must be text")
    return value


def as_int(value: Any, what: str = "uid") -> int:
    """uids and counts arrive as numbers or as strings of digits; both are fine."""
    if isinstance(value, bool):
        raise CommandError(f"{what} must be a number")
    try:
        return int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise CommandError(f"{what} must be a number, got {value!r}") from None


def _after(value: Any) -> int | str:
    return value if value in ("prepend", "append") else as_int(value, "after")


# command → (CyTube event, payload built from args). Commands with more to them are methods of
# ActionRunner (chat lines, waiting for the server's answer).
EMITS: dict[str, tuple[str, Callable[[dict], Any]]] = {
    "rmvideo": ("delete", lambda a: arg(a, "uid", kind=int)),
    "mvvideo": ("moveMedia", lambda a: {"from": arg(a, "from", "uid", kind=int),
                                        "after": _after(arg(a, "after"))}),
    "jump": ("jumpTo", lambda a: arg(a, "uid", kind=int)),
    "clear": ("clearPlaylist", lambda a: {}),
    "shuffle": ("shufflePlaylist", lambda a: {}),
    "settemp": ("setTemp", lambda a: {"uid": arg(a, "uid", kind=int),
                                      "temp": bool(arg(a, "temp", default=True))}),
    "pause": ("pause", lambda a: {}),
    "play": ("play", lambda a: {}),
    "seek": ("seekTo", lambda a: {"time": float(arg(a, "time"))}),
    "voteskip": ("voteskip", lambda a: {}),
    "playNext": ("playNext", lambda a: {}),
    "assignLeader": ("assignLeader", lambda a: {"name": arg(a, "name", "username", default="")}),
    "setMotd": ("setMotd", lambda a: {"motd": arg(a, "motd", kind=str)}),
    "setChannelCSS": ("setChannelCSS", lambda a: {"css": arg(a, "css", kind=str)}),
    "setChannelJS": ("setChannelJS", lambda a: {"js": arg(a, "js", kind=str)}),
    "setOptions": ("setOptions", lambda a: dict(arg(a, "options"))),
    "setPermissions": ("setPermissions", lambda a: dict(arg(a, "permissions"))),
    "updateEmote": ("updateEmote", lambda a: {"name": arg(a, "name", kind=str),
                                              "image": arg(a, "image", kind=str)}),
    "removeEmote": ("removeEmote", lambda a: {"name": arg(a, "name", kind=str)}),
    "setEmotes": ("importEmotes", lambda a: list(arg(a, "emotes"))),
    "addFilter": ("addFilter", lambda a: _filter(a)),
    "updateFilter": ("updateFilter", lambda a: _filter(a)),
    "removeFilter": ("removeFilter", lambda a: {"name": arg(a, "name", kind=str)}),
    "newPoll": ("newPoll", lambda a: {"title": arg(a, "title", kind=str),
                                      "opts": list(arg(a, "options", "opts")),
                                      "obscured": bool(arg(a, "obscured", default=False)),
                                      "timeout": arg(a, "timeout", default=None)}),
    "vote": ("vote", lambda a: {"option": arg(a, "option", kind=int)}),
    "closePoll": ("closePoll", lambda a: {}),
    "setChannelRank": ("setChannelRank", lambda a: {"name": arg(a, "username", "name",
                                                                kind=str),
                                                    "rank": arg(a, "rank", kind=int)}),
    "uncache": ("uncache", lambda a: {"id": arg(a, "id", "media_id", kind=str)}),
}
ALIASES = {"set_motd": "setMotd", "set_channel_css": "setChannelCSS",
           "set_channel_js": "setChannelJS", "set_options": "setOptions",
           "set_permissions": "setPermissions", "update_emote": "updateEmote",
           "remove_emote": "removeEmote", "set_emotes": "setEmotes", "add_filter": "addFilter",
           "update_filter": "updateFilter", "remove_filter": "removeFilter",
           "new_poll": "newPoll", "close_poll": "closePoll",
           "set_channel_rank": "setChannelRank", "assign_leader": "assignLeader",
           "play_next": "playNext", "deleteFromLibrary": "uncache", "searchMedia":
           "searchLibrary", "delete": "rmvideo", "move": "mvvideo", "queue": "addvideo"}
# Moderation that CyTube only knows as chat commands.
SLASH = {"kick": "/kick", "ban": "/ban", "mute": "/mute", "smute": "/smute", "unmute": "/unmute"}
# Requests the server answers with an event of its own: (emit, payload, answer, reply key).
ASKS: dict[str, tuple[str, Callable[[dict], Any], str, str]] = {
    "requestChannelRanks": ("requestChannelRanks", lambda a: {}, "channelRanks", "ranks"),
    "readChanLog": ("readChanLog", lambda a: {"count": arg(a, "count", default=100, kind=int)},
                    "readChanLog", "log"),
    "searchLibrary": ("searchMedia", lambda a: {"query": arg(a, "query", kind=str),
                                                "source": arg(a, "source", default="library")},
                      "searchResults", "results"),
}


def _filter(a: dict) -> dict:
    return {"name": arg(a, "name", kind=str), "source": arg(a, "source", kind=str),
            "flags": arg(a, "flags", default="gi"), "replace": arg(a, "replace", default=""),
            "filterlinks": bool(arg(a, "filterlinks", default=False)),
            "active": bool(arg(a, "active", default=True))}


def canonical(command: str) -> str:
    return ALIASES.get(command, command)


def known(command: str) -> bool:
    command = canonical(command)
    return (command in EMITS or command in SLASH or command in ASKS
            or command in ("say", "chat", "pm", "addvideo", "requestBanlist", "unban",
                           "restart", "reconnect"))


class Waiters:
    """Futures waiting for the room's next event that answers a request (a queue, a banlist)."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[tuple[Callable[[str, Any], Any], asyncio.Future]]] = {}

    def expect(self, room_id: str, match: Callable[[str, Any], Any]) -> tuple:
        """Start waiting before the request goes out, so a quick answer is not missed.
        ``match(event_name, payload)`` returns something truthy for the answering event."""
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        entry = (match, future)
        self._waiting.setdefault(room_id, []).append(entry)
        return room_id, entry

    async def result(self, waiter: tuple, timeout: float) -> Any:
        """The answer, or None after ``timeout``."""
        room_id, entry = waiter
        try:
            return await asyncio.wait_for(entry[1], timeout)
        except TimeoutError:
            return None
        finally:
            waiting = self._waiting.get(room_id, [])
            if entry in waiting:
                waiting.remove(entry)
            if not waiting:
                self._waiting.pop(room_id, None)

    def offer(self, room_id: str, event_name: str, payload: Any) -> None:
        for match, future in list(self._waiting.get(room_id, ())):
            if future.done():
                continue
            try:
                found = match(event_name, payload)
            except Exception:  # a payload of an unexpected shape answers nobody
                found = None
            if found:
                future.set_result(found)

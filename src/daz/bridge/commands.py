"""Carrying out one action command in one room (the table is in actions.py).

Chat and PMs go through the room's outbox, like everything daz says: paced under the server's
flood limits and split at its length limit. Lines from Kryten clients are sent as they come
(``user_input=False``): a Kryten service may send "/me" or moderation commands on purpose.
Requests the server answers (``addvideo``, the ban list, a library search) wait for that
answer in the room's event stream.
"""
from __future__ import annotations

import json
import re
from typing import Any

from daz.bridge.actions import ASKS, EMITS, SLASH, CommandError, Waiters, arg, as_int, canonical
from daz.bridge.wire import envelope

ADD_TIMEOUT = 8.0
ASK_TIMEOUT = 5.0
_YOUTUBE = re.compile(r"(?:youtube\.com/(?:watch\?(?:.*&)?v=|shorts/)|youtu\.be/)"
                      r"([A-Za-z0-9_-]{11})")


def media_of(args: dict) -> tuple[str, str]:
    """(type, id) of an ``addvideo``: given as such, or as a YouTube URL."""
    media_id = args.get("id")
    media_type = args.get("type")
    if media_id is None and isinstance(args.get("url"), str):
        found = _YOUTUBE.search(args["url"])
        if not found:
            raise CommandError("only YouTube URLs are understood; give type and id instead")
        return "yt", found.group(1)
    if not isinstance(media_id, (str, int)) or not isinstance(media_type, str):
        raise CommandError("addvideo needs type and id (or a YouTube url)")
    return media_type, str(media_id)


class ActionRunner:
    def __init__(self, waiters: Waiters, domain_of: Any) -> None:
        self.waiters = waiters
        self.domain_of = domain_of  # room → the domain Kryten clients name it by

    async def run(self, room: Any, command: str, args: dict) -> dict[str, Any]:
        command = canonical(command)
        if not room.status().get("joined"):
            raise CommandError(f"daz is not in {room.channel} right now (reconnecting)")
        if command in ("say", "chat"):
            await room.say(arg(args, "message", "msg", kind=str), user_input=False)
        elif command == "pm":
            await room.pm(arg(args, "to", "username", kind=str),
                          arg(args, "msg", "message", kind=str), user_input=False)
        elif command in SLASH:
            name = arg(args, "username", "name", kind=str)
            reason = arg(args, "reason", default="")
            await room.say(f"{SLASH[command]} {name} {reason}".rstrip(), user_input=False)
        elif command in EMITS:
            event, build = EMITS[command]
            await room.emit(event, build(args))
        elif command == "addvideo":
            return await self._add(room, args)
        elif command in ASKS:
            event, build, answer, key = ASKS[command]
            found = await self._ask(room, event, build(args), answer)
            return {"success": True, key: found}
        elif command == "requestBanlist":
            # The old bridge answers with the whole event envelope; clients read it so.
            bans = await self._ask(room, "requestBanlist", {}, "banlist")
            return {"success": True, "banlist": json.loads(envelope(
                "banlist", bans, room.channel, self.domain_of(room)))}
        elif command == "unban":
            await self._unban(room, args)
        elif command in ("restart", "reconnect"):
            conn = room.lifecycle.conn
            if conn is not None:
                await conn.close("reconnect asked for over NATS")
        else:
            raise CommandError(f"unknown command {command!r}")
        return {"success": True}

    async def _ask(self, room: Any, event: str, payload: Any, answer: str) -> Any:
        waiter = self.waiters.expect(room.id, lambda name, data: name == answer and [data])
        await room.emit(event, payload)
        found = await self.waiters.result(waiter, ASK_TIMEOUT)
        if found is None:
            raise CommandError(f"the server did not answer {event} within {ASK_TIMEOUT:.0f}s")
        return found[0]

    async def _add(self, room: Any, args: dict) -> dict[str, Any]:
        media_type, media_id = media_of(args)
        pos = args.get("pos", args.get("position", "end"))
        temp = bool(args.get("temp", True))

        def answer(name: str, data: Any) -> Any:
            if name == "queue" and isinstance(data, dict):
                media = (data.get("item") or {}).get("media") or {}
                if str(media.get("id")) == media_id:
                    return {"success": True, "uid": (data.get("item") or {}).get("uid")}
            if name == "queueFail" and isinstance(data, dict) and (
                    str(data.get("id")) == media_id or media_id in str(data.get("link", ""))):
                return {"success": False, "error": data.get("msg", "queue failed"),
                        "queue_fail": data}
            return None

        waiter = self.waiters.expect(room.id, answer)
        await room.emit("queue", {"type": media_type, "id": media_id,
                                  "pos": "next" if pos == "next" else "end", "temp": temp})
        # No answer in time: queued or not, the uid is unknown (the old bridge's reply, too).
        return await self.waiters.result(waiter, ADD_TIMEOUT) or {"success": True, "uid": None}

    async def _unban(self, room: Any, args: dict) -> None:
        ban_id = arg(args, "ban_id", "id", default=None)
        name = arg(args, "username", "name", default="")
        if ban_id is None:
            if not name:
                raise CommandError("unban needs an id or a username")
            bans = await self._ask(room, "requestBanlist", {}, "banlist")
            found = next((b for b in bans or [] if isinstance(b, dict)
                          and str(b.get("name", "")).lower() == str(name).lower()), None)
            if found is None:
                raise CommandError(f"{name} is not on the ban list")
            ban_id, name = found.get("id"), found.get("name", name)
        await room.emit("unban", {"id": as_int(ban_id, "id"), "name": name})

"""Driving a Kit's room like the connection does: frames applied to RoomState, then published.

Used by the greeter and tell tests. ``joined``/``left``/``userlist`` change the room's user list
first (as the connection does before publishing), ``room_joined``/``disconnected`` raise daz's
own lifecycle events, and ``SayRecorder`` notes the ``user_input`` flag of every line sent.
"""
from __future__ import annotations

import time

from daz.cytube.events import parse_event
from daz.events import RoomDisconnected, RoomJoined


def user_payload(name: str, rank: float = 1) -> dict:
    return {"name": name, "rank": rank, "profile": {"image": "", "text": ""},
            "meta": {"afk": False, "muted": False}}


async def frame(kit, name: str, payload, *, settle: bool = True, t: float | None = None):
    ev = parse_event(name, payload, room_id=kit.room.id, channel=kit.room.channel,
                     received_at=time.time() if t is None else t)
    kit.room.state.apply(ev)
    await kit.bus.publish(ev)
    if settle:
        await kit.bus.drain(10)
    return ev


async def joined(kit, name: str, rank: float = 1, **kw):
    return await frame(kit, "addUser", user_payload(name, rank), **kw)


async def left(kit, name: str, **kw):
    return await frame(kit, "userLeave", {"name": name}, **kw)


async def userlist(kit, *names: str, **kw):
    return await frame(kit, "userlist", [user_payload(n) for n in names], **kw)


async def room_joined(kit, *, reconnect: bool = False) -> None:
    await kit.bus.publish(RoomJoined(room_id=kit.room.id, channel=kit.room.channel,
                                     bot_name=kit.room.bot_name, reconnect=reconnect))
    await kit.bus.drain(10)


async def disconnected(kit) -> None:
    await kit.bus.publish(RoomDisconnected(room_id=kit.room.id, channel=kit.room.channel,
                                           reason="test", will_retry=True))
    await kit.bus.drain(10)


class SayRecorder:
    """Wraps a RecordingRoom's say/pm to keep the user_input flag of each line."""

    def __init__(self, room):
        self.room = room
        self.flags: list[tuple[str, bool]] = []
        say, pm = room.say, room.pm

        async def recording_say(text, *, user_input=True):
            self.flags.append((text, user_input))
            await say(text, user_input=user_input)

        async def recording_pm(to, text, *, user_input=True):
            self.flags.append((text, user_input))
            await pm(to, text, user_input=user_input)

        room.say, room.pm = recording_say, recording_pm

"""Feeding CyTube frames to the tracker plugins as the connection does, and calling commands.

``feed`` parses a frame with ``parse_event``, applies it to the room's ``RoomState`` first (the
connection's order) and publishes it on the real bus; ``received_at`` can be set so that tests
control the times the plugins record.
"""
from __future__ import annotations

import time
from types import SimpleNamespace

from daz.commands import CommandContext
from daz.cytube.events import parse_event
from daz.events import RoomDisconnected

T0 = time.time() - 6 * 3600  # tests speak of "hours ago" relative to now


def event(kit, name: str, payload, t: float | None = None, room=None):
    room = room or kit.room
    return parse_event(name, payload, room_id=room.id, channel=room.channel,
                       received_at=time.time() if t is None else t)


async def feed(kit, name: str, payload, t: float | None = None, *, room=None, settle=True,
               marks: dict | None = None):
    """Apply and publish one event; ``marks`` (replayed, own, ...) are set before publishing,
    as the room's intake does."""
    room = room or kit.room
    ev = event(kit, name, payload, t, room)
    for mark, value in (marks or {}).items():
        setattr(ev, mark, value)
    room.state.apply(ev)
    await kit.bus.publish(ev)
    if settle:
        await kit.bus.drain(10)
    return ev


def user(name: str, rank: float = 1, afk: bool = False) -> dict:
    return {"name": name, "rank": rank, "profile": {"image": "", "text": ""},
            "meta": {"afk": afk, "muted": False}}


def media(mid: str, title: str = "", seconds: int = 120, mtype: str = "cu") -> dict:
    return {"id": mid, "title": title or f"title {mid}", "seconds": seconds,
            "duration": f"{seconds // 60:02d}:{seconds % 60:02d}", "type": mtype, "meta": {}}


def item(uid: int, mid: str, *, by: str = "alice", seconds: int = 120, mtype: str = "cu") -> dict:
    return {"media": media(mid, seconds=seconds, mtype=mtype), "uid": uid, "temp": False,
            "queueby": by}


async def disconnect(kit, t: float | None = None):
    ev = RoomDisconnected(room_id=kit.room.id, channel=kit.room.channel, reason="test",
                          received_at=time.time() if t is None else t)
    await kit.bus.publish(ev)
    await kit.bus.drain(10)


async def command(kit, name: str, username: str, *args: str, rank: float = 1) -> list[str]:
    """Run a registered command's handler as the dispatcher would; returns its replies."""
    entry = kit.commands.resolve(name)
    assert entry is not None, f"!{name} is not registered"
    ctx = CommandContext(room=kit.room, event=SimpleNamespace(username=username),
                         command=entry, invoked_as=name, args=list(args), rest=" ".join(args),
                         username=username, rank=rank, is_admin=False, via_pm=False)
    await entry.handler(ctx, *entry.bind(list(args)))
    return ctx.replies

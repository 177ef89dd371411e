"""A small bot for plugin tests: the real plugin manager, bus and registry, RecordingRooms.

    kit = await Kit.start({"eventfilter": EventFilter, "basics": Basics}, db=database)
    kit.user("alice", rank=1)
    await kit.chat("alice", "!ping")        # msg as the server sends it: HTML-escaped
    assert kit.room.said == ["pong"]
    await kit.stop()

No sockets: events are built with ``parse_event`` exactly as the connection builds them, and
published on the real bus, so the manager's filtering, priorities and lanes all apply.
"""
from __future__ import annotations

import asyncio
import html
import itertools

from daz.bus import Bus
from daz.clock import Clock
from daz.config import load_config
from daz.cytube.events import parse_event
from daz.cytube.rooms import Rooms
from daz.cytube.state import name_key
from daz.cytube.values import User
from daz.metrics import Metrics
from daz.plugins.manager import PluginManager
from tests.fakes.room import RecordingRoom

_seq = itertools.count(1)


class Kit:
    def __init__(self, manager: PluginManager, room: RecordingRoom):
        self.manager = manager
        self.room = room
        self.bus = manager.bus
        self.metrics = manager.metrics
        self.commands = manager.commands

    @classmethod
    async def start(cls, classes: dict, *, sections: dict | None = None,
                    admins: list[str] | None = None, db=None, clock: Clock | None = None,
                    bus: Bus | None = None, commands=None, data_dir=None,
                    core: dict | None = None) -> "Kit":
        config = load_config(None, env={}, overrides={"channel": "testchan"})
        config.plugins.update(sections or {})
        for key, value in (core or {}).items():  # e.g. core={"commands": {"prefix": "$"}}
            setattr(config.core, key, type(getattr(config.core, key)).model_validate(value))
        config.core.admin_users = list(admins or [])
        room = RecordingRoom(room_id="testchan", channel="testchan", bot_name="dazbot")
        metrics = Metrics()
        manager = PluginManager(config=config, bus=bus or Bus(metrics=metrics), rooms=Rooms([room]),
                                db=db, http=None, clock=clock or Clock(), metrics=metrics,
                                data_dir=data_dir, commands=commands)
        await manager.start(manager.select(classes))
        return cls(manager, room)

    def plugin(self, name: str):
        return self.manager.get(name)

    def user(self, name: str, rank: float = 0) -> None:
        self.room.state.users[name_key(name)] = User(name=name, rank=rank)

    async def chat(self, user: str, msg: str, *, settle: bool = True, **flags) -> None:
        event = parse_event("chatMsg", {"username": user, "msg": msg, "meta": {},
                                        "time": next(_seq)},
                            room_id=self.room.id, channel=self.room.channel)
        for key, value in flags.items():
            setattr(event, key, value)
        await self.bus.publish(event)
        if settle:
            await self.settle()

    async def pm(self, user: str, msg: str, *, settle: bool = True, **flags) -> None:
        event = parse_event("pm", {"username": user, "to": self.room.bot_name, "msg": msg,
                                   "meta": {}, "time": next(_seq)},
                            room_id=self.room.id, channel=self.room.channel)
        for key, value in flags.items():
            setattr(event, key, value)
        await self.bus.publish(event)
        if settle:
            await self.settle()

    async def publish(self, event) -> None:
        await self.bus.publish(event)
        await self.settle()

    async def settle(self, timeout: float = 5.0) -> None:
        """Every queued event handled and every command task (and what it published) done."""
        for _ in range(5):
            await self.bus.drain(timeout)
            await self.manager.dispatcher.settle(timeout)
            await asyncio.sleep(0)
        await self.bus.drain(timeout)

    async def stop(self) -> None:
        await self.manager.stop()
        await self.bus.close()


# Who types a command's examples (``daz.plugins.base.Example``): a registered user.
EXAMPLE_USER = "alice"


async def answers_to_example(classes: dict, example, **kit_args) -> list[tuple[str, str]]:
    """Start a Kit with ``classes``, set the room up as ``example`` declares, type its line
    (HTML-escaped, as the server sends it) and return every answer in order: ("chat", text) or
    ("pm", text) for PMs to the example's user."""
    kit = await Kit.start(classes, admins=[EXAMPLE_USER] if example.admin else [], **kit_args)
    try:
        kit.user(EXAMPLE_USER, rank=1)
        for name in example.present:
            kit.user(name, rank=1)
        answers: list[tuple[str, str]] = []
        room = kit.room
        say, pm = room.say, room.pm

        async def record_say(text: str, **kw) -> None:
            answers.append(("chat", text))
            await say(text, **kw)

        async def record_pm(to: str, text: str, **kw) -> None:
            if to == EXAMPLE_USER:
                answers.append(("pm", text))
            await pm(to, text, **kw)

        room.say, room.pm = record_say, record_pm
        typed = html.escape(example.line)
        if example.pm:
            await kit.pm(EXAMPLE_USER, typed)
        else:
            await kit.chat(EXAMPLE_USER, typed)
        return answers
    finally:
        await kit.stop()

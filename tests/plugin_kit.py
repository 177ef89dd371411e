"""A small bot for plugin tests: the real plugin manager, bus and registry, RecordingRooms.

    async with Kit({"eventfilter": EventFilter, "basics": Basics}, db=database) as kit:
        kit.user("alice", rank=1)
        await kit.chat("alice", "!ping")    # msg as the server sends it: HTML-escaped
        assert kit.room.said == ["pong"]

Leaving the block stops the plugins and the bus whether the body passed or failed; after a
failure every task started inside the block is cancelled too, so a failing test leaks nothing
into the next. (``kit = await Kit.start(...)`` ... ``await kit.stop()`` does the same by hand;
a kit a failed test left running is stopped by ``stop_running_kits``, which the ``database``
fixture calls before it closes the pool.)

No sockets: events are built with ``parse_event`` exactly as the connection builds them, and
published on the real bus, so the manager's filtering, priorities and lanes all apply.

Plugins always get a database: ``db=database`` (a real one), else one that never answers
(``tests/fakes/no_database.py``), on which they take their "database down" path.
"""
from __future__ import annotations

import asyncio
import html
import itertools
import logging
import weakref

from daz.bus import Bus
from daz.clock import Clock
from daz.config import load_config
from daz.cytube.events import parse_event
from daz.cytube.rooms import Rooms
from daz.cytube.state import name_key
from daz.cytube.values import User
from daz.metrics import Metrics
from daz.plugins.manager import PluginManager
from daz.stopping import StopBudget
from tests.fakes.no_database import database_that_never_answers
from tests.fakes.room import RecordingRoom

_seq = itertools.count(1)
FAILED_STOP_SECONDS = 2.0  # after a failure nothing is worth waiting long for
_running: weakref.WeakSet[Kit] = weakref.WeakSet()
log = logging.getLogger(__name__)


class Kit:
    def __init__(self, classes: dict, *, sections: dict | None = None,
                 admins: list[str] | None = None, db=None, clock: Clock | None = None,
                 bus: Bus | None = None, commands=None, data_dir=None,
                 core: dict | None = None):
        config = load_config(None, env={}, overrides={"channel": "testchan"})
        config.plugins.update(sections or {})
        for key, value in (core or {}).items():  # e.g. core={"commands": {"prefix": "$"}}
            setattr(config.core, key, type(getattr(config.core, key)).model_validate(value))
        config.core.admin_users = list(admins or [])
        clock = clock or Clock()
        self.room = RecordingRoom(room_id="testchan", channel="testchan", bot_name="dazbot")
        metrics = Metrics()
        self.manager = PluginManager(
            config=config, bus=bus or Bus(metrics=metrics, clock=clock),
            rooms=Rooms([self.room]),
            db=db if db is not None else database_that_never_answers(), http=None, clock=clock,
            metrics=metrics, data_dir=data_dir, commands=commands)
        self.bus = self.manager.bus
        self.metrics = self.manager.metrics
        self.commands = self.manager.commands
        self.clock = clock
        self._classes = classes
        self._tasks_before: set[asyncio.Task] = set()
        self._stopped = False

    @classmethod
    async def start(cls, classes: dict, **options) -> Kit:
        """A started kit; the caller stops it (prefer ``async with Kit(...)``)."""
        return await cls(classes, **options).__aenter__()

    async def __aenter__(self) -> Kit:
        self._tasks_before = asyncio.all_tasks()
        _running.add(self)
        try:
            await self.manager.start(self.manager.select(self._classes))
        except BaseException:
            await self._stop(failed=True)
            raise
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        await self._stop(failed=exc_type is not None)

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
        await self._stop(failed=False)

    async def _stop(self, *, failed: bool) -> None:
        """Stop the plugins and the bus. ``failed``: the test failed, so a stop that fails
        too is only logged (the test's own error is the one to see), and every task started
        since the kit did is cancelled and awaited."""
        if self._stopped:
            return
        self._stopped = True
        _running.discard(self)
        try:
            await self.manager.stop(StopBudget(FAILED_STOP_SECONDS) if failed else None)
            await self.bus.close()
        except Exception:
            if not failed:
                raise
            log.exception("plugin kit: stopping after a failed test failed too")
        finally:
            if failed:
                await self._cancel_tasks_started_since_enter()

    async def _cancel_tasks_started_since_enter(self) -> None:
        current = asyncio.current_task()
        leftover = [t for t in asyncio.all_tasks() - self._tasks_before
                    if t is not current and not t.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            await asyncio.wait(leftover, timeout=5)


def stats_noted_every_subscription(kit: Kit) -> bool:
    """The stats plugin has seen every subscription on the kit's bus (it counts only those)."""
    noted = kit.plugin("stats").seen_subs
    return all(id(sub) in noted for sub in kit.bus.subscriptions())


async def stop_running_kits() -> None:
    """Stop every kit still running (a test failed before its ``kit.stop()``)."""
    for kit in list(_running):
        await kit._stop(failed=True)


# Who types a command's examples (``daz.plugins.base.Example``): a registered user.
EXAMPLE_USER = "alice"


async def answers_to_example(classes: dict, example, **kit_args) -> list[tuple[str, str]]:
    """Start a Kit with ``classes``, set the room up as ``example`` declares, type its line
    (HTML-escaped, as the server sends it) and return every answer in order: ("chat", text) or
    ("pm", text) for PMs to the example's user."""
    async with Kit(classes, admins=[EXAMPLE_USER] if example.admin else [], **kit_args) as kit:
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

"""The plugin test kit: leaving it stops everything, and a failing test leaks no task."""
import asyncio

import pytest

from daz.clock import FakeClock
from daz.cytube.events import ChatMessage
from daz.plugins.base import Plugin, every, on
from daz.plugins.basics import Basics
from tests.plugin_kit import Kit, stop_running_kits


class Leaky(Plugin):
    """Everything a plugin can leave running: its own task (which teardown forgets), a timer,
    and a handler that never returns."""

    name = "leaky"

    async def setup(self):
        self.own_task = asyncio.create_task(asyncio.Event().wait(), name="leaky:own")
        self.entered = asyncio.Event()
        self.ticks = 0

    @every(seconds=1)
    async def tick(self):
        self.ticks += 1

    @on(ChatMessage)
    async def hang(self, event):
        self.entered.set()
        await asyncio.Event().wait()


def others(before):
    return {t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()}


async def test_a_failing_body_still_stops_and_cancels_everything_the_kit_started():
    before = asyncio.all_tasks()
    clock = FakeClock()
    with pytest.raises(RuntimeError, match="the test failed"):
        async with Kit({"basics": Basics, "leaky": Leaky}, clock=clock) as kit:
            leaky = kit.plugin("leaky")
            await clock.run(2)
            assert leaky.ticks == 2
            await kit.chat("alice", "hello", settle=False)
            await asyncio.wait_for(leaky.entered.wait(), 5)
            assert others(before)  # lanes, timers, the watchdog, the plugin's own task
            raise RuntimeError("the test failed")
    assert others(before) == set()
    assert leaky.own_task.cancelled()


async def test_a_passing_body_stops_the_plugins_and_the_bus():
    before = asyncio.all_tasks()
    async with Kit({"basics": Basics}) as kit:
        kit.user("alice", rank=1)
        await kit.chat("alice", "!ping")
        assert kit.room.said == ["pong"]
    assert others(before) == set()
    assert kit.manager.status()["basics"]["running"]  # what it was; its jobs are gone
    assert all(task.done() for lp in kit.manager.loaded.values() for task in lp.jobs.values())


async def test_a_kit_a_failed_test_left_running_is_stopped_by_stop_running_kits():
    before = asyncio.all_tasks()
    kit = await Kit.start({"basics": Basics, "leaky": Leaky}, clock=FakeClock())
    await kit.chat("alice", "hello", settle=False)
    await asyncio.wait_for(kit.plugin("leaky").entered.wait(), 5)
    await stop_running_kits()  # what the database fixture does after a test
    assert others(before) == set()

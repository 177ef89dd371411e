"""stats: per-plugin figures from the bus into daz_plugin_stats and /metrics."""
import asyncio
from types import SimpleNamespace

import pytest

from daz.cytube.events import ChatMessage
from daz.plugins.base import Plugin, on
from daz.plugins.stats import Stats
from tests.plugin_kit import Kit

pytest.importorskip("daz.db.pool", reason="the database layer is not committed yet")

MANUAL = {"stats": {"interval_seconds": 3600, "snapshot_seconds": 0.01}}


class Listener(Plugin):
    name = "listener"

    @on(ChatMessage)
    async def chat(self, event):
        if event.text == "boom":
            raise RuntimeError("listener bug")


async def start(database):
    k = await Kit.start({"stats": Stats, "listener": Listener}, db=database, sections=MANUAL)
    await asyncio.sleep(0.05)  # a snapshot has noted the listener's subscription
    return k


async def row(database, name):
    return await database.fetchrow(
        "SELECT events_processed, events_failed FROM daz_plugin_stats WHERE plugin_name = $1",
        name)


async def test_counts_are_added_per_write_and_kept_across_restarts(database):
    k = await start(database)
    for text in ("a", "b", "boom"):
        await k.chat("alice", text)
    stats = k.plugin("stats")
    await stats.write()
    assert tuple(await row(database, "listener")) == (3, 1)
    await k.chat("alice", "c")
    await stats.write()
    await stats.write()  # nothing new: nothing added twice
    assert tuple(await row(database, "listener")) == (4, 1)
    m = k.metrics.registry
    assert m.get_sample_value("daz_plugin_events_total", {"plugin": "listener"}) == 4
    assert m.get_sample_value("daz_plugin_handle_seconds_avg", {"plugin": "listener"}) > 0
    await k.chat("alice", "d")
    await k.stop()  # teardown writes what is left
    assert tuple(await row(database, "listener")) == (5, 1)

    k = await start(database)  # a new process adds to the lifetime totals
    await k.chat("alice", "boom")
    await k.stop()
    assert tuple(await row(database, "listener")) == (6, 2)


async def test_database_failure_is_caught_up_on_the_next_write(database):
    k = await start(database)
    stats = k.plugin("stats")
    await k.chat("alice", "x")

    class Down:
        def acquire(self):
            raise ConnectionRefusedError("database down")

    stats.ctx.db = SimpleNamespace(pool=Down())
    try:
        await stats.write()
    except ConnectionRefusedError:
        pass
    finally:
        stats.ctx.db = database
    await k.chat("alice", "y")
    await stats.write()
    assert tuple(await row(database, "listener")) == (2, 0)
    await k.stop()

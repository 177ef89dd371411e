"""stats: per-plugin figures from the bus into daz_plugin_stats and /metrics."""
from types import SimpleNamespace

import pytest

from daz.cytube.events import ChatMessage
from daz.plugins.base import Plugin, on
from daz.plugins.stats import Stats
from tests.e2e.harness import wait_until
from tests.plugin_kit import Kit, stats_noted_every_subscription

MANUAL = {"stats": {"interval_seconds": 3600, "snapshot_seconds": 0.01}}


class Listener(Plugin):
    name = "listener"

    @on(ChatMessage)
    async def chat(self, event):
        if event.text == "boom":
            raise RuntimeError("listener bug")


async def start(database):
    k = await Kit.start({"stats": Stats, "listener": Listener}, db=database, sections=MANUAL)
    await wait_until(lambda: stats_noted_every_subscription(k),
                     what="a snapshot noting the listener's subscription")
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

    stats.ctx.db = SimpleNamespace(pool=Down(), acquire=Down().acquire)  # db.acquire() or pool
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


async def test_a_write_whose_commit_reply_was_lost_is_not_added_twice(database):
    import daz.plugins.stats as stats_module

    k = await start(database)
    stats = k.plugin("stats")
    for text in ("a", "boom"):
        await k.chat("alice", text)
    real = stats_module.store_totals

    async def commit_then_fail(conn, *args, **kw):
        await real(conn, *args, **kw)
        raise ConnectionResetError("connection lost after COMMIT")

    stats_module.store_totals = commit_then_fail
    try:
        with pytest.raises(ConnectionResetError):
            await stats.write()
    finally:
        stats_module.store_totals = real
    assert tuple(await row(database, "listener")) == (2, 1)
    await k.chat("alice", "c")
    await stats.write()  # repeats the totals of the lost write, plus the new line: adds 1
    assert tuple(await row(database, "listener")) == (3, 1)
    seconds = await database.fetchval(
        "SELECT handle_seconds FROM daz_plugin_stats WHERE plugin_name = 'listener'")
    assert seconds > 0
    await k.stop()
    assert await database.fetchval(
        "SELECT events_processed FROM daz_plugin_stats_runs WHERE plugin_name = 'listener'"
        " AND run_id = $1", stats.run_id) == 3


async def test_rows_of_long_finished_runs_are_deleted(database):
    await database.execute(
        "INSERT INTO daz_plugin_stats_runs (run_id, plugin_name, updated_at)"
        " VALUES (gen_random_uuid(), 'old', now() - interval '40 days')")
    k = await start(database)
    await k.chat("alice", "a")
    await k.plugin("stats").write()
    assert await database.fetchval(
        "SELECT count(*) FROM daz_plugin_stats_runs WHERE plugin_name = 'old'") == 0
    await k.stop()

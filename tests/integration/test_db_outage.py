"""The database connection is cut for a few seconds while plugins are writing: every write lands
exactly once afterwards.

The database is reached through a cuttable TCP proxy (tests/fakes/tcp_proxy.py); "cut" drops
every open connection abruptly (statements in flight die, possibly after their COMMIT reached
the server) and refuses new ones, like a crashed server or a network partition.
"""
import asyncio
import contextlib
from urllib.parse import urlsplit

from daz.plugins.analytics import Analytics
from daz.plugins.base import Plugin
from daz.plugins.basics import Basics
from daz.plugins.eventfilter import EventFilter
from daz.plugins.retry import Retry
from daz.plugins.stats import Stats
from daz.plugins.usertracker import UserTracker
from tests.e2e.harness import wait_until
from tests.fakes.tcp_proxy import TcpProxy
from tests.integration.tracker_feed import feed, user
from tests.plugin_kit import Kit, stats_noted_every_subscription

CUT_SECONDS = 2.0


@contextlib.asynccontextmanager
async def proxied(migrated_dsn):
    from daz.db.pool import Database

    target = urlsplit(migrated_dsn)
    proxy = await TcpProxy(target.hostname, target.port or 5432).start()
    db = Database(proxy.dsn_for(migrated_dsn), min_size=1, max_size=5, command_timeout=3,
                  connect_timeout=1)
    await db.start()
    try:
        yield proxy, db
    finally:
        await db.close()
        await proxy.stop()


async def cut(proxy: TcpProxy, seconds: float = CUT_SECONDS) -> None:
    await proxy.block()
    await asyncio.sleep(seconds)
    await proxy.unblock()


class Ledger(Plugin):
    """A plugin that writes keyed increments and hands failed ones to the retry queue.

    The write is idempotent by key (an applied-keys table in the same transaction), which is
    what ``retry_operation`` must be: the queue runs an operation at least once, the key makes
    it once. ``lose_reply`` simulates the worst moment of a cut: COMMIT done, reply lost.
    """

    name = "ledger"

    async def setup(self):
        self.deferred: list[str] = []
        self.lose_reply: set[str] = set()

    async def add(self, key: str, amount: int) -> None:
        try:
            await self._apply(key, amount)
        except Exception as exc:
            self.deferred.append(key)
            assert await self.defer_retry("add", {"key": key, "amount": amount}, key=key,
                                          error=str(exc) or type(exc).__name__)

    async def _apply(self, key: str, amount: int) -> None:
        async with self.ctx.db.pool.acquire() as conn, conn.transaction():
            fresh = await conn.fetchval(
                "INSERT INTO outage_applied (key) VALUES ($1) ON CONFLICT DO NOTHING"
                " RETURNING key", key)
            if fresh is not None:
                await conn.execute("UPDATE outage_total SET total = total + $1,"
                                   " writes = writes + 1", amount)
        if key in self.lose_reply:
            self.lose_reply.discard(key)
            raise ConnectionResetError("connection lost after COMMIT")

    async def retry_operation(self, operation, payload):
        assert operation == "add"
        await self._apply(payload["key"], payload["amount"])


async def _poll(retry) -> None:
    with contextlib.suppress(Exception):
        await retry.poll()


async def test_writes_during_a_cut_land_exactly_once_through_the_retry_queue(migrated_dsn,
                                                                             database):
    await database.execute("CREATE TABLE outage_applied (key text PRIMARY KEY)")
    await database.execute("CREATE TABLE outage_total (total bigint, writes bigint)")
    await database.execute("INSERT INTO outage_total VALUES (0, 0)")
    async with proxied(migrated_dsn) as (proxy, db):
        k = await Kit.start({"retry": Retry, "ledger": Ledger}, db=db, sections={"retry": {
            "first_poll_seconds": 3600, "initial_delay_seconds": 0, "jitter": 0,
            "insert_timeout_seconds": 1, "batch_size": 20, "worker_count": 5}})
        ledger, retry = k.plugin("ledger"), k.plugin("retry")
        ledger.lose_reply = {f"k{i}" for i in range(0, 300, 25)}  # 12 replies lost after COMMIT
        amounts = {f"k{i}": i % 7 + 1 for i in range(300)}
        outage = None
        for i, (key, amount) in enumerate(amounts.items()):
            if i == 60:
                outage = asyncio.create_task(cut(proxy))
            await ledger.add(key, amount)
            await asyncio.sleep(0.01)
        await outage
        held = k.metrics.registry.get_sample_value("daz_retry_operations_total",
                                                   {"plugin": "ledger", "outcome": "held"})
        assert held and held > 0, "the cut never hit a write: the test proved nothing"

        async def all_done():
            await _poll(retry)
            queued = await database.fetchval(
                "SELECT count(*) FROM daz_retry_queue WHERE status <> 'completed'")
            return not retry.pending and queued == 0 and await database.fetchval(
                "SELECT count(*) FROM outage_applied") == len(amounts)

        await wait_until(all_done, 30, "every deferred write run")
        applied = {r["key"] for r in await database.fetch("SELECT key FROM outage_applied")}
        assert applied == set(amounts)
        total, writes = await database.fetchrow("SELECT total, writes FROM outage_total")
        assert (total, writes) == (sum(amounts.values()), len(amounts))  # each exactly once
        queue = await database.fetch("SELECT correlation_id, status FROM daz_retry_queue")
        assert sorted(r["correlation_id"] for r in queue) == sorted(set(ledger.deferred))
        assert len(ledger.deferred) > 12  # the lost replies and the writes during the cut
        await k.stop()


async def test_plugins_lose_and_double_nothing_when_the_database_is_cut(migrated_dsn, database):
    fast = {"eventfilter": {"history_flush_seconds": 0.05},
            "analytics": {"flush_seconds": 0.05},
            "stats": {"interval_seconds": 0.05, "snapshot_seconds": 0.01},
            "usertracker": {"activity_flush_seconds": 0.05}}
    plugins = {"eventfilter": EventFilter, "basics": Basics, "analytics": Analytics,
               "stats": Stats, "usertracker": UserTracker}
    async with proxied(migrated_dsn) as (proxy, db):
        k = await Kit.start(plugins, db=db, sections=fast)
        await wait_until(lambda: stats_noted_every_subscription(k),
                         what="stats noting every subscription")
        names = [f"user{n}" for n in range(7)]
        await feed(k, "userlist", [user(n) for n in names])
        lines = pings = 0
        outage = None
        for i in range(300):
            if i == 60:
                outage = asyncio.create_task(cut(proxy))
            if i == 100:  # a join during the cut: held, and written once the database is back
                await feed(k, "addUser", user("late"), settle=False)
            name = names[i % len(names)]
            if i % 10 == 0:
                await k.chat(f"pinger{i}", "!ping", settle=False)
                pings += 1
            else:
                await k.chat(name, f"line {i}", settle=False)
            lines += 1
            await asyncio.sleep(0.01)
        await outage
        await k.settle()
        assert k.room.said == ["pong"] * pings  # answered all along, database or not
        # After the cut: the periodic flushes catch up on their own.
        ef, an, st = k.plugin("eventfilter"), k.plugin("analytics"), k.plugin("stats")

        async def caught_up():
            return (len(ef.history) == 0 and an.pending is None and not an.current
                    and await database.fetchval(
                        "SELECT count(*) FROM daz_eventfilter_history") == pings)

        await wait_until(caught_up, 20, "history and analytics flushed")
        assert ef.history.failures > 0, "the cut never hit a flush: the test proved nothing"
        assert await database.fetchval(
            "SELECT count(*) FROM daz_eventfilter_history WHERE success") == pings
        messages, commands = await database.fetchrow(
            "SELECT sum(message_count), sum(commands_used) FROM daz_analytics_hourly"
            " WHERE channel = 'testchan'")
        assert (messages, commands) == (lines, pings)
        assert await database.fetchval(
            "SELECT sum(total_messages) FROM daz_analytics_user_stats") == lines
        # stats: the lifetime rows equal what this process counted, no more, no less.
        await wait_until(lambda: _stats_match(st, database), 20, "plugin stats written")
        # usertracker: the join made during the cut is written without waiting for a user list,
        # and the next user list finds nothing to repair.
        async def late_joined():
            return await database.fetchval(
                "SELECT count(*) FROM daz_user_tracker_sessions WHERE username = 'late'"
                " AND is_active") == 1

        await wait_until(late_joined, 20, "the join held during the cut written")
        await feed(k, "userlist", [user(n) for n in [*names, "late"]])
        assert await late_joined()
        assert await database.fetchval(
            "SELECT count(*) FROM daz_user_tracker_history WHERE username = 'late'") == 1
        await k.stop()


async def _stats_match(stats, database) -> bool:
    with contextlib.suppress(Exception):
        await stats.write()
    totals = stats.collect()
    rows = {r["plugin_name"]: r["events_processed"] for r in await database.fetch(
        "SELECT plugin_name, events_processed FROM daz_plugin_stats")}
    return all(rows.get(name) == t.handled for name, t in totals.items())


async def test_a_command_switched_off_during_a_cut_stays_off_and_is_saved_later(migrated_dsn,
                                                                               database):
    plugins = {"retry": Retry, "eventfilter": EventFilter, "basics": Basics}
    manual = {"retry": {"first_poll_seconds": 3600, "initial_delay_seconds": 0,
                        "insert_timeout_seconds": 1},
              "eventfilter": {"history_flush_seconds": 3600}}
    async with proxied(migrated_dsn) as (proxy, db):
        k = await Kit.start(plugins, db=db, sections=manual, admins=["mia"])
        k.user("mia", 3)
        await proxy.block()
        await k.chat("mia", "!command disable ping")
        assert k.room.said == [
            "!ping is off. (the database did not answer; it is saved when it is back)"]
        await k.chat("alice", "!ping")
        assert k.room.pms == [("alice", "!ping is switched off.")]
        await proxy.unblock()
        ef = k.plugin("eventfilter")
        await ef._load_enabled()  # the periodic re-read sees the old value in the table...
        assert not k.commands.resolve("ping").enabled  # ...and does not undo the switch

        async def saved():
            await _poll(k.plugin("retry"))
            return await database.fetchval(
                "SELECT enabled FROM daz_eventfilter_commands WHERE command = 'ping'") is False
        await wait_until(saved, 15, "the switch saved by the retry queue")
        assert not ef.unsaved
        await k.stop()
    k = await Kit.start(plugins, db=database, sections=manual)  # a restart: still off
    assert not k.commands.resolve("ping").enabled
    await k.stop()

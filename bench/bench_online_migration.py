"""Upgrading a big Go-made database while a bot writes to it: how long writers wait.

A database with the Go bot's schema (tests/integration/fixtures/go_daz_schema.sql) gets
``--events`` core events (default 5 M: 3/5 chat, the rest joins, leaves and mediaUpdate). Then,
while a writer inserts a chat event every 10 ms the way a live bot does (one short transaction
each, ON CONFLICT DO NOTHING) and times every insert, daz upgrades it as ``daz run`` does:
``migrate`` (the transactional part), the small tables' indexes, then the big tables' indexes
CONCURRENTLY in the background. Printed: how soon the bot could serve, how long the background
builds took, the writer's worst and p99 wait, and whether every row the writer wrote is there
exactly once. For comparison, the same chat index is then built the old way (one transaction,
plain CREATE UNIQUE INDEX) while the writer goes on.

    python bench/bench_online_migration.py --events 5000000
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import asyncpg

from bench.common import percentile, report, run, scratch_database, test_dsn
from daz.db import online
from daz.db.migrate import migrate, online_steps, run_script
from daz.db.pool import Database

GO_SCHEMA = Path(__file__).resolve().parents[1] / "tests/integration/fixtures/go_daz_schema.sql"
CHAT_INDEX = "idx_events_chatmsg_text_unique"
WRITE_EVERY = 0.01

GO_EVENTS = """
    INSERT INTO daz_core_events (event_type, channel_name, timestamp, username, message,
                                 message_time, raw_data)
    SELECT CASE WHEN g % 5 < 3 THEN 'cytube.event.chatMsg'
                WHEN g % 5 = 3 THEN 'cytube.event.mediaUpdate' ELSE 'cytube.event.addUser' END,
           'bigchan', timestamp '2023-12-01' + g * interval '18 seconds',
           'user' || (hashint8(g::bigint) & 2047),
           CASE WHEN g % 5 < 3 THEN 'chat line number ' || g || ' with some words in it' END,
           1701388800000 + g::bigint * 18000, jsonb_build_object('n', g)
    FROM generate_series(1, $1) g"""


class Writer:
    """A live bot's inserts: one chat event per tick, each timed."""

    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn
        self.waits: list[float] = []
        self.texts: list[str] = []
        self.stop = asyncio.Event()

    async def run(self) -> None:
        while not self.stop.is_set():
            text = f"live line {uuid.uuid4()}"
            started = time.perf_counter()
            await self.conn.execute(
                "INSERT INTO daz_core_events (event_type, channel_name, timestamp, username,"
                " message, message_time, raw_data) VALUES ('cytube.event.chatMsg', 'bigchan',"
                " now(), 'liveuser', $1, (extract(epoch FROM clock_timestamp()) * 1e6)::bigint,"
                " '{}'::jsonb) ON CONFLICT DO NOTHING", text, timeout=600)
            self.waits.append(time.perf_counter() - started)
            self.texts.append(text)
            await asyncio.sleep(WRITE_EVERY)

    def worst(self) -> tuple[float, float]:
        return max(self.waits) * 1000, percentile(self.waits, 99) * 1000


async def go_database(base: str, events: int) -> str:
    dsn = await scratch_database(base, "daz_bench_online_migration")
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await run_script(conn, GO_SCHEMA.name, GO_SCHEMA.read_text(encoding="utf-8"))
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'daz_core_events'"
            " AND indexname <> 'daz_core_events_pkey'")
        for row in indexes:  # a bulk load: indexes once at the end
            await conn.execute(f"DROP INDEX {row['indexname']}")
        started = time.monotonic()
        await conn.execute("SET max_parallel_workers_per_gather = 0")
        await conn.execute(GO_EVENTS, events, timeout=3600)
        await conn.execute("SET maintenance_work_mem = '256MB'")
        for row in indexes:
            await conn.execute(row["indexdef"], timeout=3600)
        await conn.execute("VACUUM ANALYZE daz_core_events", timeout=3600)
        size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size("
                                   "'daz_core_events'))")
        print(f"  Go database: {events:,} core events, {size} with indexes, made in"
              f" {time.monotonic() - started:.0f} s", flush=True)
    finally:
        await conn.close()
    return dsn


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    args = parser.parse_args()
    dsn = await go_database(test_dsn(), args.events)
    writer_conn = await asyncpg.connect(dsn)
    writer = Writer(writer_conn)
    writing = asyncio.create_task(writer.run())
    await asyncio.sleep(0.5)
    db = Database(dsn, min_size=1, max_size=3, command_timeout=60)
    await db.start()
    started = time.monotonic()
    await migrate(db.pool, build_indexes=False)
    builds = online.BackgroundBuilds(db.pool, online_steps())
    await builds.before_serving()
    serving = time.monotonic() - started
    worst_until_serving = writer.worst()
    builds.start()
    if builds.task is not None:
        await builds.task
    built = time.monotonic() - started - serving
    writer.stop.set()
    await writing
    worst, p99 = writer.worst()
    written = await writer_conn.fetchval(
        "SELECT count(*) FROM daz_core_events WHERE username = 'liveuser'")
    distinct = await writer_conn.fetchval(
        "SELECT count(DISTINCT message) FROM daz_core_events WHERE username = 'liveuser'")
    took = ", ".join(f"{n} {s:.1f} s" for n, s in builds.report.seconds.items())
    print(f"  background builds: {took}")
    report("online: time until daz serves", serving, "s", "17 s before (issue 14)")
    report("online: background index builds", built, "s", "while daz serves")
    report("online: writer worst wait until serving", worst_until_serving[0], "ms", "< 1000 ms")
    report("online: writer worst wait, whole upgrade", worst, "ms", "< 1000 ms")
    report("online: writer p99 wait, whole upgrade", p99, "ms", "")
    report("online: writer rows lost or doubled", abs(len(writer.texts) - written)
           + (written - distinct), "rows", f"of {len(writer.texts)} written")

    # The old way, for comparison: one transaction holding a SHARE lock for the whole build.
    await writer_conn.execute(f"DROP INDEX {CHAT_INDEX}")
    writer.waits.clear()
    writer.stop.clear()
    writing = asyncio.create_task(writer.run())
    await asyncio.sleep(0.5)
    step = next(s for s in online_steps() if s.index == CHAT_INDEX)
    plain = step.statement.text.replace(" CONCURRENTLY", "")
    async with db.pool.acquire() as conn:
        started = time.monotonic()
        async with conn.transaction():
            await conn.execute(plain, timeout=3600)
        held = time.monotonic() - started
    await asyncio.sleep(0.2)
    writer.stop.set()
    await writing
    report("in one transaction: chat index build", held, "s", "the old migration")
    report("in one transaction: writer worst wait", writer.worst()[0], "ms", "")
    await db.close()
    await writer_conn.close()


if __name__ == "__main__":
    run(main())

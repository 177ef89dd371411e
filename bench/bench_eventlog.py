"""The event log: events/s from the bus into daz_core_events (and its side tables) through the
sql plugin, with the default indexes, measured against a bare COPY into the same table in the
same run. Also: the ways of writing a batch: COPY straight into the table (the writer's way for
fresh batches), and the two that skip duplicates: COPY into a staging table + INSERT … SELECT …
ON CONFLICT (retries, spill replays) and unnest INSERT … ON CONFLICT (the row-by-row fallback).

Lost events must be 0: every published event is counted in the table by its event_uid.
"""
from __future__ import annotations

import logging
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import asyncpg

from bench.common import (
    Timer,
    bare_copy_rate,
    report,
    run,
    scratch_database,
    sized,
    test_dsn,
)
from daz.bus import Bus
from daz.clock import Clock
from daz.config import load_config
from daz.cytube.events import parse_event
from daz.cytube.rooms import Rooms
from daz.db.migrate import migrate
from daz.db.pool import Database
from daz.metrics import Metrics
from daz.plugins.manager import PluginManager, plugin_class
from daz.plugins.sql import eventrows
from tests.fakes.room import RecordingRoom

EVENTS = sized(40_000, 4_000)
STRATEGY_ROWS = sized(20_000, 2_000)  # rows per way and batch size in batch_strategies()
CHANNEL = "benchchan"


def frames(n: int, offset: int = 0) -> list[tuple[str, object]]:
    """A chat-heavy mix like a busy room: 85 % chat, joins/leaves, media updates."""
    out = []
    for i in range(offset, offset + n):
        kind = i % 20
        if kind < 17:
            out.append(("chatMsg", {"username": f"user{i % 50}", "msg": f"message number {i} "
                                    "with a <a href=\"https://example.com\">link</a>",
                                    "meta": {}, "time": 1_800_000_000_000 + i}))
        elif kind == 17:
            out.append(("addUser", {"name": f"guest{i}", "rank": 0, "meta": {"afk": False}}))
        elif kind == 18:
            out.append(("userLeave", {"name": f"guest{i - 1}"}))
        else:
            out.append(("mediaUpdate", {"currentTime": i / 10, "paused": False}))
    return out


def copy_records(n: int) -> list[tuple]:
    now = eventrows.stamp(time.time())
    return [(uuid.uuid4(), "cytube.event.chatMsg", CHANNEL, now, f"user{i % 50}",
             f"message number {i}", 1_900_000_000_000 + i, '{"msg": "x"}') for i in range(n)]


WAYS = ("direct", "staging", "unnest")


async def batch_strategies(dsn: str, n: int, batch: int) -> dict[str, float]:
    """rows/s for n rows in batches: COPY straight into the table, COPY to staging + INSERT
    SELECT, unnest INSERT (best of three rounds, rotating which goes first, so caches and
    noise favour none)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(eventrows.STAGE_DDL)
        best = dict.fromkeys(WAYS, 0.0)
        for round_ in range(3):
            entries = [eventrows.LogEntry.build(
                uid=str(uuid.uuid4()), event_type="cytube.event.chatMsg", channel=CHANNEL,
                timestamp=time.time(), payload={"msg": "x"}, username=f"u{i % 50}",
                message=f"m {i}", message_time=2_000_000_000_000 + round_ * n + i)
                for i in range(n)]
            order = WAYS[round_:] + WAYS[:round_]
            for way in order:
                if way == "direct":  # a fresh copy of the entries: new uids, new chat keys
                    chunks = [[eventrows.LogEntry.build(
                        uid=str(uuid.uuid4()), event_type=e.event_type, channel=e.channel,
                        timestamp=e.timestamp, payload={"msg": "x"}, username=e.username,
                        message=e.message, message_time=e.message_time + 10 * n)
                        for e in entries[start:start + batch]] for start in range(0, n, batch)]
                else:
                    chunks = [entries[start:start + batch] for start in range(0, n, batch)]
                with Timer() as t:
                    for chunk in chunks:
                        async with conn.transaction():
                            if way == "direct":
                                rows = [eventrows.row_for(eventrows.CORE, e) for e in chunk]
                                await conn.copy_records_to_table(
                                    eventrows.CORE, records=rows,
                                    columns=eventrows.CORE_COLUMNS)
                            elif way == "unnest":
                                rows = [eventrows.row_for(eventrows.CORE, e) for e in chunk]
                                await conn.execute(eventrows.INSERT_SQL[eventrows.CORE],
                                                   *eventrows.columns_of(rows))
                            else:
                                records, _ = eventrows.stage_records(chunk)
                                await conn.copy_records_to_table(
                                    eventrows.STAGE, records=records,
                                    columns=eventrows.STAGE_COLUMNS)
                                await conn.execute(eventrows.FROM_STAGE[eventrows.CORE])
                best[way] = max(best[way], n / t.seconds)
                await conn.execute("TRUNCATE daz_core_events")
        return best
    finally:
        await conn.close()


async def through_the_plugin(dsn: str, n: int, section: dict) -> tuple[float, int, dict]:
    db = Database(dsn, max_size=4)
    await db.start()
    config = load_config(None, env={}, overrides={"channel": CHANNEL})
    config.plugins["sql"] = section
    room = RecordingRoom(room_id=CHANNEL, channel=CHANNEL, bot_name="dazbot")
    bus = Bus()
    with tempfile.TemporaryDirectory() as data_dir:
        manager = PluginManager(config=config, bus=bus, rooms=Rooms([room]), db=db, http=None,
                                clock=Clock(), metrics=Metrics(), data_dir=Path(data_dir))
        await manager.start(manager.select({"sql": plugin_class("sql")}))
        eventlog = manager.get("sql").eventlog
        events = [parse_event(name, payload, room_id=CHANNEL, channel=CHANNEL, seq=i)
                  for i, (name, payload) in enumerate(frames(n))]
        with Timer() as t:
            for event in events:
                await bus.publish(event)
            await bus.drain(120)
            assert await eventlog.wait_idle(120), eventlog.status()
        status = eventlog.status()
        await manager.stop()
        await bus.close()
    stored = await db.fetchval("SELECT count(DISTINCT event_uid) FROM daz_core_events")
    await db.execute("TRUNCATE daz_core_events, daz_chat_log, daz_user_activity")
    await db.close()
    return n / t.seconds, n - stored, status


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    dsn = await scratch_database(test_dsn(), "daz_bench_eventlog")
    db = Database(dsn)
    await db.start()
    await migrate(db.pool)
    await db.close()
    print(f"  {EVENTS:,} events (85 % chat with links, joins, leaves, media updates);"
          " daz_core_events with its 7 indexes (Go's 5 + event_uid + pkey)")

    copy_rate = await bare_copy_rate(dsn, copy_records(EVENTS))
    report("bare COPY into daz_core_events", copy_rate, "rows/s",
           "physical limit: one COPY, no dedup, no side tables")

    rate, lost, status = await through_the_plugin(dsn, EVENTS, {})
    report("bus → sql plugin → tables, defaults (256/200 ms)", rate, "events/s",
           f"{rate / copy_rate:.0%} of bare COPY; writes core + chat_log + user_activity rows")
    report("lost events (defaults)", lost, "events", "must be 0")
    report("duplicates skipped (defaults)", status["duplicates_skipped"], "rows", "must be 0")

    rate, lost, _ = await through_the_plugin(dsn, EVENTS, {
        "logger_rules": [{"event_pattern": "cytube.event.*", "table": "daz_core_events"}]})
    report("bus → sql plugin → daz_core_events only", rate, "events/s",
           f"{rate / copy_rate:.0%} of bare COPY (Go's one-rule config)")
    report("lost events (core only)", lost, "events", "must be 0")

    rate, lost, _ = await through_the_plugin(
        dsn, EVENTS, {"core_event_batch_size": 64, "core_event_max_batch": 64})
    report("bus → sql plugin, batches capped at 64", rate, "events/s",
           "Go's batch size without daz's larger backlog batches")
    report("lost events (64 cap)", lost, "events", "must be 0")

    for batch in (64, 1024):
        rates = await batch_strategies(dsn, STRATEGY_ROWS, batch)
        report(f"COPY straight into the table, batches of {batch}", rates["direct"], "rows/s",
               "what the writer uses for fresh batches")
        report(f"COPY→staging + INSERT SELECT, batches of {batch}", rates["staging"], "rows/s",
               "retries, spill replays, batches holding a duplicate")
        report(f"unnest INSERT ON CONFLICT, batches of {batch}", rates["unnest"], "rows/s",
               "the alternative (used for the row-by-row fallback)")


if __name__ == "__main__":
    run(main())

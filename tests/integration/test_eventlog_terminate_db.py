"""A dropped connection is not bad data (issue 11 §5): backends killed with
``pg_terminate_backend`` every 0.3 s while a 20,000-line flood is written, five times over. A
batch cut short by a killed connection is retried on another connection; nothing is lost,
nothing is written twice, and nothing good ends up in ``eventlog.spill.rejected``."""
from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from daz.db.pool import Database
from daz.journal import stream_at
from daz.plugins.sql.eventlog import EventLog
from tests.integration.test_eventlog_db import chat, join

LINES = 20_000
RUNS = 5
KILL_EVERY = 0.3


async def terminate_backends(dsn: str, stop: asyncio.Event, killed: list[int]) -> None:
    """Kill every daz backend of the test database, every KILL_EVERY seconds."""
    admin = await asyncpg.connect(dsn)
    try:
        while not stop.is_set():
            rows = await admin.fetch(
                "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = 'daz'"
                " AND pid <> pg_backend_pid()")
            killed.append(sum(1 for r in rows if r["done"]))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), KILL_EVERY)
    finally:
        await admin.close()


async def flood_under_kills(db: Database, dsn: str, spill, run: int) -> tuple[EventLog, list]:
    """One run: the flood arrives over ~2 s while backends are killed; then the writer catches
    up with the killing over."""
    log = EventLog(db, journal=stream_at(spill), batch_size=256, flush_interval=0.05,
                   retry_max_delay=0.2, write_timeout=5)
    await log.start()
    entries = [join(f"user{run}-{i}") if i % 10 == 0 else chat(run * LINES + i)
               for i in range(LINES)]
    stop, killed = asyncio.Event(), []
    killer = asyncio.create_task(terminate_backends(dsn, stop, killed))
    try:
        for i, entry in enumerate(entries):
            await log.admit(entry)
            if i % 100 == 0:
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await killer
    try:
        assert await log.wait_idle(30), log.status()
    finally:
        await log.close()
    assert sum(killed) > 0, "no connection was cut under the writer"
    return log, entries


async def test_terminated_backends_lose_duplicate_and_reject_nothing(migrated_dsn, tmp_path):
    spill = tmp_path / "eventlog.spill"
    rejected = tmp_path / "eventlog.spill.rejected"
    db = Database(migrated_dsn, min_size=1, max_size=4, connect_timeout=5)
    await db.start()
    try:
        for run in range(RUNS):
            log, entries = await flood_under_kills(db, migrated_dsn, spill, run)
            uids = [str(r["event_uid"]) for r in await db.fetch(
                "SELECT event_uid FROM daz_core_events")]
            lost = {e.uid for e in entries} - set(uids)
            assert not lost, f"run {run}: {len(lost)} lost"
            assert len(uids) == len(set(uids)) == LINES, f"run {run}: duplicated"
            assert await db.fetchval("SELECT count(*) FROM daz_chat_log") == LINES - LINES // 10
            assert not rejected.exists(), rejected.read_text()[:2000]
            assert log.counts["failed"] == 0, log.status()
            await db.execute("TRUNCATE daz_core_events, daz_chat_log, daz_user_activity")
    finally:
        await db.close()


async def test_a_connection_left_mid_operation_never_goes_back_to_the_pool(migrated_dsn):
    db = Database(migrated_dsn, min_size=1, max_size=1)
    await db.start()
    try:
        async with db.acquire() as conn:
            first = conn.get_server_pid()
        with contextlib.suppress(asyncpg.UniqueViolationError):
            async with db.acquire() as conn:
                await conn.execute("CREATE TEMP TABLE t (x int PRIMARY KEY);"
                                   " INSERT INTO t VALUES (1), (1)")
        async with db.acquire() as conn:
            assert conn.get_server_pid() == first  # a clean server error keeps it
        with contextlib.suppress(TimeoutError):
            async with db.acquire() as conn:
                async with asyncio.timeout(0.05):
                    await conn.execute("SELECT pg_sleep(5)")  # cancelled mid-operation
        async with db.acquire() as conn:
            assert conn.get_server_pid() != first
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await db.close()

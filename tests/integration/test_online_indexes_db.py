"""Index builds that do not stop the bot (daz/db/online.py), against a real PostgreSQL: writers
keep going during a build, an interrupted build is resumed, a drop waits for its replacement,
and big tables are left for the background while the bot serves."""
from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest

from daz.db import online
from daz.db.migrate import Migration, migrate, online_steps
from daz.db.pool import Database

PM_INSERT = ("INSERT INTO daz_private_messages (event_uid, event_type, from_user, to_user, message,"
             " channel, message_time, timestamp) VALUES ($1, 'pm', 'a', 'b', 'hi', 'c', 1, now())")


@pytest.fixture
async def conn(migrated_dsn):
    c = await asyncpg.connect(migrated_dsn)
    yield c
    await c.close()


def sql_steps(tmp_path, text: str, name: str = "x.sql") -> list[online.OnlineStep]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return online_steps([Migration("x", name, path)])


async def test_every_online_index_of_the_schema_is_valid_after_migrate(conn):
    names = [step.index for step in online_steps() if not step.is_drop]
    assert {"idx_chat_channel_user_time", "idx_usertracker_sessions_user_time",
            "idx_events_chatmsg_text_unique", "idx_events_event_uid"} <= set(names)
    for name in names:
        assert await online.index_state(conn, name) == "valid", name
    assert await online.index_state(conn, "idx_events_chatmsg_unique") == "missing"


async def test_an_index_left_invalid_by_a_failed_build_is_dropped_and_built_again(conn):
    await conn.execute("DROP INDEX idx_pm_event_uid")
    twin = uuid.uuid4()
    await conn.execute(PM_INSERT, twin)
    await conn.execute(PM_INSERT, twin)  # a duplicate: the unique build fails half-way
    steps = [s for s in online_steps() if s.index == "idx_pm_event_uid"]
    report = await online.build(conn, steps)
    assert "idx_pm_event_uid" in report.failed and report.pending == ["idx_pm_event_uid"]
    assert await online.index_state(conn, "idx_pm_event_uid") == "invalid"
    await conn.execute("DELETE FROM daz_private_messages WHERE id = (SELECT max(id) FROM"
                       " daz_private_messages)")
    report = await online.build(conn, steps)  # the next start
    assert report.rebuilt == ["idx_pm_event_uid"] and not report.failed
    assert await online.index_state(conn, "idx_pm_event_uid") == "valid"
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(PM_INSERT, twin)


async def test_migrate_names_a_build_that_fails(conn, tmp_path):
    await conn.execute("CREATE TABLE dup (v int)")
    await conn.execute("INSERT INTO dup VALUES (1), (1)")
    path = tmp_path / "dup.sql"
    path.write_text("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_dup ON dup (v);\n")
    with pytest.raises(Exception, match="idx_dup"):
        await migrate(conn, files=[Migration("dup", "001_baseline.sql", path)])


async def test_a_drop_waits_until_its_replacement_is_valid(conn, tmp_path):
    await conn.execute("CREATE TABLE t (v int)")
    await conn.execute("INSERT INTO t VALUES (1), (1)")
    await conn.execute("CREATE INDEX idx_t_old ON t (v)")
    steps = sql_steps(tmp_path,
                      "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_t_new ON t (v);\n"
                      "DROP INDEX CONCURRENTLY IF EXISTS idx_t_old;\n")
    report = await online.build(conn, steps)
    assert "idx_t_new" in report.failed and report.pending == ["idx_t_new", "idx_t_old"]
    assert await online.index_state(conn, "idx_t_old") == "valid"  # still there
    await conn.execute("DELETE FROM t WHERE ctid = (SELECT max(ctid) FROM t)")
    report = await online.build(conn, steps)
    assert report.built == ["idx_t_new", "idx_t_old"]
    assert await online.index_state(conn, "idx_t_old") == "missing"


def test_a_concurrent_statement_that_could_not_be_resumed_is_refused(tmp_path):
    with pytest.raises(ValueError, match="IF NOT EXISTS"):
        sql_steps(tmp_path, "CREATE INDEX CONCURRENTLY idx_x ON t (v);\n")


async def test_writers_keep_going_while_an_index_builds(migrated_dsn, conn):
    """A build waits for an old transaction to end (it must); inserts meanwhile do not wait."""
    await conn.execute("DROP INDEX idx_chat_channel_user_time")
    old_reader = await asyncpg.connect(migrated_dsn)
    builder = await asyncpg.connect(migrated_dsn)
    try:
        reader_tx = old_reader.transaction(isolation="repeatable_read")
        await reader_tx.start()
        await old_reader.fetchval("SELECT count(*) FROM daz_chat_log")  # holds a snapshot
        steps = [s for s in online_steps() if s.index == "idx_chat_channel_user_time"]
        build = asyncio.create_task(online.build(builder, steps))
        await asyncio.sleep(0.5)
        assert not build.done()  # waiting for the old reader
        waits = []
        for i in range(20):
            started = time.monotonic()
            await conn.execute("INSERT INTO daz_chat_log (username, message, channel, timestamp)"
                               " VALUES ('w', $1, 'c', now())", f"line {i}", timeout=2)
            waits.append(time.monotonic() - started)
        assert max(waits) < 0.5, waits
        await reader_tx.commit()
        report = await asyncio.wait_for(build, 30)
        assert report.built == ["idx_chat_channel_user_time"]
    finally:
        await old_reader.close()
        await builder.close()
    assert await online.index_state(conn, "idx_chat_channel_user_time") == "valid"


async def test_daz_run_builds_small_tables_first_and_big_ones_while_it_serves(migrated_dsn, conn,
                                                                             monkeypatch):
    for name in ("idx_chat_channel_user_time", "idx_pm_channel_time"):
        await conn.execute(f"DROP INDEX {name}")
    await conn.execute("INSERT INTO daz_chat_log (username, message, channel, timestamp)"
                       " SELECT 'u' || g, 'x', 'c', now() FROM generate_series(1, 2000) g")
    monkeypatch.setattr(online, "BIG_TABLE_BYTES", 8192)  # chat is "big", PMs (empty) are not
    db = Database(migrated_dsn, min_size=1, max_size=3)
    await db.start()
    try:
        builds = online.BackgroundBuilds(db.pool, online_steps())
        await builds.before_serving()
        assert await online.index_state(conn, "idx_pm_channel_time") == "valid"
        assert await online.index_state(conn, "idx_chat_channel_user_time") == "missing"
        assert "idx_chat_channel_user_time" in builds.status()["pending"]
        builds.start()
        await asyncio.wait_for(builds.task, 30)
        assert builds.status() == {"pending": [], "building": False, "failed": {}}
        assert await online.index_state(conn, "idx_chat_channel_user_time") == "valid"
    finally:
        await db.close()


async def test_a_migration_waiting_for_a_lock_does_not_queue_writers(migrated_dsn, conn,
                                                                     tmp_path):
    """A long read holds the table; the migration's ALTER TABLE gives up its place in the lock
    queue after a second (so inserts behind it go on), and is applied once the read ends."""
    path = tmp_path / "alter.sql"
    path.write_text("ALTER TABLE daz_chat_log ADD COLUMN IF NOT EXISTS note text;\n")
    reader = await asyncpg.connect(migrated_dsn)
    migrator = await asyncpg.connect(migrated_dsn)
    try:
        tx = reader.transaction()
        await tx.start()
        await reader.fetchval("SELECT count(*) FROM daz_chat_log")  # holds ACCESS SHARE
        migrating = asyncio.create_task(
            migrate(migrator, files=[Migration("x", "001_alter.sql", path)]))
        await asyncio.sleep(0.3)
        waits = []
        for i in range(15):
            started = time.monotonic()
            await conn.execute("INSERT INTO daz_chat_log (username, message, channel, timestamp)"
                               " VALUES ('w', $1, 'c', now())", f"line {i}", timeout=10)
            waits.append(time.monotonic() - started)
            await asyncio.sleep(0.1)
        assert max(waits) < 1.5, waits  # never the reader's whole 2 s and more
        assert not migrating.done()
        await tx.commit()
        assert await asyncio.wait_for(migrating, 30) == ["x/001_alter.sql"]
    finally:
        await reader.close()
        await migrator.close()
    assert await conn.fetchval("SELECT count(*) FROM information_schema.columns"
                               " WHERE table_name = 'daz_chat_log' AND column_name = 'note'") == 1

"""The mediatracker and analytics schema files on an empty database and on one the Go Daz built
(its DDL, with the untidy rows Go left behind), re-run, and
the database-side guarantees the plugins rely on."""
import time
import uuid
from datetime import timedelta

import asyncpg
import pytest

from daz.db.migrate import PLUGINS_DIR, migrate, migrations, run_script
from daz.plugins.registry import available_plugins
from tests.integration.tracker_feed import feed, item, media
from tests.plugin_kit import Kit

MEDIA = PLUGINS_DIR / "mediatracker" / "migrations" / "001_baseline.sql"
ANALYTICS = PLUGINS_DIR / "analytics" / "migrations" / "001_baseline.sql"

# The Go bot's DDL: an old enough install, where the queue has
# no uid column yet and hourly/daily no updated_at.
GO_DDL = """
CREATE TABLE daz_mediatracker_plays (
    id BIGSERIAL PRIMARY KEY, channel VARCHAR(255) NOT NULL, media_id VARCHAR(255) NOT NULL,
    media_type VARCHAR(50) NOT NULL, title TEXT NOT NULL, duration INTEGER NOT NULL,
    started_at TIMESTAMP NOT NULL, ended_at TIMESTAMP, queued_by VARCHAR(255),
    completed BOOLEAN DEFAULT false, metadata JSONB);
CREATE INDEX idx_mediatracker_plays_time ON daz_mediatracker_plays (channel, started_at);
CREATE TABLE daz_mediatracker_queue (
    id SERIAL PRIMARY KEY, channel VARCHAR(255) NOT NULL, position INTEGER NOT NULL,
    media_id VARCHAR(255) NOT NULL, media_type VARCHAR(50) NOT NULL, title TEXT NOT NULL,
    duration INTEGER NOT NULL, queued_by VARCHAR(255), queued_at TIMESTAMP NOT NULL,
    UNIQUE (channel, position));
CREATE TABLE daz_mediatracker_stats (
    id SERIAL PRIMARY KEY, channel VARCHAR(255) NOT NULL, media_id VARCHAR(255) NOT NULL,
    media_type VARCHAR(50) NOT NULL, title TEXT NOT NULL, play_count BIGINT DEFAULT 0,
    total_duration BIGINT DEFAULT 0, last_played TIMESTAMP, first_played TIMESTAMP,
    UNIQUE (channel, media_id));
CREATE TABLE daz_mediatracker_library (
    id BIGSERIAL PRIMARY KEY, url TEXT NOT NULL UNIQUE, media_id VARCHAR(255) NOT NULL,
    media_type VARCHAR(50) NOT NULL, title TEXT NOT NULL, duration INTEGER,
    first_seen TIMESTAMP NOT NULL, last_played TIMESTAMP, play_count INTEGER DEFAULT 0,
    added_by VARCHAR(100), channel VARCHAR(100) NOT NULL, metadata JSONB,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, UNIQUE (media_id, media_type));
CREATE INDEX idx_library_url ON daz_mediatracker_library (url);
CREATE TABLE daz_analytics_hourly (
    id SERIAL PRIMARY KEY, channel VARCHAR(255) NOT NULL, hour_start TIMESTAMP NOT NULL,
    message_count BIGINT DEFAULT 0, unique_users INTEGER DEFAULT 0, media_plays INTEGER DEFAULT 0,
    commands_used INTEGER DEFAULT 0, metadata JSONB, UNIQUE (channel, hour_start));
CREATE TABLE daz_analytics_daily (
    id SERIAL PRIMARY KEY, channel VARCHAR(255) NOT NULL, day_date DATE NOT NULL,
    total_messages BIGINT DEFAULT 0, unique_users INTEGER DEFAULT 0,
    total_media_plays INTEGER DEFAULT 0, peak_users INTEGER DEFAULT 0,
    active_hours INTEGER DEFAULT 0, metadata JSONB, UNIQUE (channel, day_date));
CREATE TABLE daz_analytics_user_stats (
    id SERIAL PRIMARY KEY, channel VARCHAR(255) NOT NULL, username VARCHAR(255) NOT NULL,
    total_messages BIGINT DEFAULT 0, first_seen TIMESTAMP NOT NULL, last_seen TIMESTAMP NOT NULL,
    active_days INTEGER DEFAULT 0, metadata JSONB, UNIQUE (channel, username));
"""

# What Go left behind: three plays of one channel never closed (a restart, two rooms), rows
# in every table.
GO_ROWS = """
INSERT INTO daz_mediatracker_plays (channel, media_id, media_type, title, duration, started_at)
VALUES ('chan', 'a', 'yt', 'A', 100, '2024-01-01 10:00'),
       ('chan', 'b', 'yt', 'B', 200, '2024-01-01 11:00'),
       ('chan', 'c', 'yt', 'C', 300, '2024-01-01 12:00'),
       ('other', 'x', 'yt', 'X', 50, '2024-01-01 09:00');
INSERT INTO daz_mediatracker_queue (channel, position, media_id, media_type, title, duration,
                                    queued_at)
VALUES ('chan', 0, 'a', 'yt', 'A', 100, '2024-01-01'),
       ('chan', 1, 'b', 'yt', 'B', 200, '2024-01-01');
INSERT INTO daz_mediatracker_stats (channel, media_id, media_type, title, play_count)
VALUES ('chan', 'a', 'yt', 'A', 7);
INSERT INTO daz_mediatracker_library (url, media_id, media_type, title, first_seen, play_count,
                                      channel)
VALUES ('https://www.youtube.com/watch?v=a', 'a', 'yt', 'A', '2024-01-01', 40, 'chan');
INSERT INTO daz_analytics_hourly (channel, hour_start) VALUES ('chan', '2024-01-01 10:00');
INSERT INTO daz_analytics_user_stats (channel, username, total_messages, first_seen, last_seen)
VALUES ('chan', 'alice', 12, '2024-01-01', '2024-01-02');
"""


async def _columns(conn, table):
    return {r["column_name"] for r in await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = $1", table)}


async def _indexes(conn, table):
    return {r["indexname"] for r in await conn.fetch(
        "SELECT indexname FROM pg_indexes WHERE tablename = $1", table)}


def test_plugin_order_applies_both_files():
    names = [m.name for m in migrations()]
    for plugin in ("mediatracker", "analytics"):
        assert plugin in available_plugins()
        assert f"{plugin}/001_baseline.sql" in names
    assert names.index("mediatracker/001_baseline.sql") < names.index(
        "analytics/001_baseline.sql")


async def test_empty_database_gets_the_go_names_and_reruns_cleanly(fresh_dsn):
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await migrate(conn)
        for path in (MEDIA, ANALYTICS):  # a second and third run change nothing and do not fail
            for _ in range(2):
                async with conn.transaction():
                    await run_script(conn, path.name, path.read_text())
        assert {"uid", "queued_at", "position"} <= await _columns(conn, "daz_mediatracker_queue")
        assert {"joins", "updated_at"} <= await _columns(conn, "daz_analytics_hourly")
        constraints = {r["conname"] for r in await conn.fetch("SELECT conname FROM pg_constraint")}
        assert {"daz_mediatracker_queue_channel_position_key",
                "daz_mediatracker_stats_channel_media_id_key",
                "daz_mediatracker_library_url_key",
                "daz_mediatracker_library_media_id_media_type_key",
                "daz_analytics_hourly_channel_hour_start_key",
                "daz_analytics_daily_channel_day_date_key",
                "daz_analytics_user_stats_channel_username_key"} <= constraints
        assert {"idx_queue_uid", "idx_mediatracker_queue_channel_uid"} <= await _indexes(
            conn, "daz_mediatracker_queue")
    finally:
        await conn.close()


async def test_a_go_database_is_upgraded_keeping_its_rows(fresh_dsn):
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await conn.execute(GO_DDL)
        await conn.execute(GO_ROWS)
        await migrate(conn)
        async with conn.transaction():  # and once more, as after an upgrade of daz
            await run_script(conn, MEDIA.name, MEDIA.read_text())
            await run_script(conn, ANALYTICS.name, ANALYTICS.read_text())
        # Rows kept; the two older open plays of 'chan' closed at their nominal end.
        open_plays = await conn.fetch(
            "SELECT channel, media_id FROM daz_mediatracker_plays WHERE ended_at IS NULL"
            " ORDER BY channel")
        assert [tuple(r) for r in open_plays] == [("chan", "c"), ("other", "x")]
        assert await conn.fetchval("SELECT ended_at - started_at FROM daz_mediatracker_plays"
                                   " WHERE media_id = 'a'") == timedelta(seconds=100)
        assert await conn.fetchval("SELECT count(*) FROM daz_mediatracker_queue") == 2
        assert await conn.fetchval("SELECT play_count FROM daz_mediatracker_stats") == 7
        assert await conn.fetchval("SELECT play_count FROM daz_mediatracker_library") == 40
        assert await conn.fetchval(
            "SELECT total_messages FROM daz_analytics_user_stats") == 12
        assert await conn.fetchval("SELECT joins FROM daz_analytics_hourly") == 0
        assert "uid" in await _columns(conn, "daz_mediatracker_queue")
    finally:
        await conn.close()


async def test_the_database_refuses_a_second_open_play_and_a_repeated_uid(database):
    await database.execute(
        "INSERT INTO daz_mediatracker_plays (channel, media_id, media_type, title, duration,"
        " started_at) VALUES ('c', 'a', 'yt', 'A', 10, now())")
    with pytest.raises(asyncpg.UniqueViolationError):
        await database.execute(
            "INSERT INTO daz_mediatracker_plays (channel, media_id, media_type, title, duration,"
            " started_at) VALUES ('c', 'b', 'yt', 'B', 10, now())")
    await database.execute(  # another channel may have its own open play
        "INSERT INTO daz_mediatracker_plays (channel, media_id, media_type, title, duration,"
        " started_at) VALUES ('d', 'b', 'yt', 'B', 10, now())")
    row = "('c', {pos}, '5', 'a', 'yt', 'A', 10, now())"
    sql = ("INSERT INTO daz_mediatracker_queue (channel, position, uid, media_id, media_type,"
           " title, duration, queued_at) VALUES ")
    await database.execute(sql + row.format(pos=0))
    with pytest.raises(asyncpg.UniqueViolationError):
        await database.execute(sql + row.format(pos=1))
    flush = "INSERT INTO daz_analytics_flushes (flush_id) VALUES ($1)"
    fid = uuid.uuid4()
    await database.execute(flush, fid)
    with pytest.raises(asyncpg.UniqueViolationError):
        await database.execute(flush, fid)


async def test_the_plugin_carries_on_from_a_go_database(fresh_dsn):
    from daz.db.pool import Database
    from daz.plugins.mediatracker import MediaTracker

    conn = await asyncpg.connect(fresh_dsn)
    try:
        await conn.execute(GO_DDL)
        await conn.execute(GO_ROWS.replace("'chan'", "'testchan'"))
        await migrate(conn)
    finally:
        await conn.close()
    db = Database(fresh_dsn, min_size=1, max_size=3)
    await db.start()
    k = await Kit.start({"mediatracker": MediaTracker}, db=db)
    try:
        t = time.time()
        await feed(k, "playlist", [item(1, "a", mtype="yt", seconds=100)], t)
        await feed(k, "setCurrent", 1, t)
        await feed(k, "changeMedia", {**media("a", seconds=100, mtype="yt"), "currentTime": 0,
                                      "paused": False}, t)
        rows = await db.fetch("SELECT media_id, ended_at FROM daz_mediatracker_plays"
                              " WHERE channel = 'testchan' ORDER BY id")
        assert [r["media_id"] for r in rows] == ["a", "b", "c", "a"]
        assert [r["ended_at"] is None for r in rows] == [False, False, False, True]
        assert await db.fetchval("SELECT play_count FROM daz_mediatracker_stats") == 8
        assert await db.fetchval("SELECT play_count FROM daz_mediatracker_library") == 41
        assert [tuple(r) for r in await db.fetch(
            "SELECT position, uid, media_id FROM daz_mediatracker_queue")] == [(0, "1", "a")]
    finally:
        await k.stop()
        await db.close()

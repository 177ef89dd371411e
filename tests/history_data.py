"""A synthetic, deterministic channel history of years, written by SQL alone (generate_series).

At ``scale=1`` it is the size issue 14 measured: 5 M core events, 3 M chat lines, 300 k
sessions, 200 k plays, 100 k gallery images, 50 k tells, 100 k PMs, 20 k people, over three
years up to ``END``. Smaller scales shrink every count (not the people or the span), which is
what the index tests use.

Deterministic: every value comes from the row number through ``hashint8`` (no random()), so two
runs at one scale write the same rows. Who said a line is skewed the way a real room is: a few
people say most of it (``user0`` the most), thousands say a line now and then.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg

CHANNEL = "testchan"  # the channel of tests/plugin_kit.py's room
OTHER_CHANNEL = "elsewhere"  # a tenth of the rows, so every lookup has to filter by channel
END = datetime(2026, 12, 1)  # naive UTC, as the Go schema stores times
YEARS = 3
PEOPLE = 20_000
HEAVY_USER = "user0"
LIGHT_USER = "user19999"


@dataclass(frozen=True)
class Sizes:
    core_other: int  # events that are not chat (joins, leaves, mediaUpdate, ...)
    chat: int
    sessions: int
    plays: int
    images: int
    health_checks: int
    tells: int
    pms: int
    greetings: int
    preferences: int

    @classmethod
    def at(cls, scale: float) -> Sizes:
        def n(full: int) -> int:
            return max(1, int(full * scale))
        return cls(core_other=n(2_000_000), chat=n(3_000_000), sessions=n(300_000),
                   plays=n(200_000), images=n(100_000), health_checks=n(300_000),
                   tells=n(50_000), pms=n(100_000), greetings=n(100_000),
                   preferences=PEOPLE // 4)  # per person, not per year: never scaled


# The pieces every statement shares: $1 = the row count, $2 = the end of the span.
SPAN = f"interval '{YEARS * 365} days'"
# A fraction in [0, 1) from row number g and a salt: deterministic, well spread.
FRAC = "((hashint8(g::bigint * 7919 + {salt}) & 2147483647)::float8 / 2147483648.0)"
# A person: the cube skews toward user0 (a few talk a lot, most rarely).
PERSON = "('user' || floor(power(" + FRAC + ", 3) * " + str(PEOPLE) + ")::int)"
WHEN = "($2::timestamp - " + SPAN + " * (1 - g::float8 / $1))"  # old to new, in row order
WHICH_CHANNEL = ("CASE WHEN g % 10 = 0 THEN '" + OTHER_CHANNEL + "' ELSE '" + CHANNEL
                 + "' END")

STATEMENTS = {
    "chat": f"""
        WITH r AS (SELECT g, {PERSON.format(salt=1)} AS who, {WHEN} AS at,
                          {WHICH_CHANNEL} AS ch FROM generate_series(1, $1) g),
        core AS (
            INSERT INTO daz_core_events (event_type, channel_name, timestamp, username, message,
                                         message_time, raw_data)
            SELECT 'cytube.event.chatMsg', ch, at, who, 'line ' || g || ' from ' || who,
                   (extract(epoch FROM at) * 1000)::bigint + g % 1000, '{{}}'::jsonb FROM r)
        INSERT INTO daz_chat_log (username, message, user_rank, channel, timestamp)
        SELECT who, 'line ' || g || ' from ' || who, 1, ch, at FROM r""",
    "core_other": f"""
        INSERT INTO daz_core_events (event_type, channel_name, timestamp, username, video_id,
                                     video_type, title, duration, raw_data)
        SELECT CASE g % 10 WHEN 0 THEN 'cytube.event.addUser' WHEN 1 THEN 'cytube.event.userLeave'
                  WHEN 2 THEN 'cytube.event.changeMedia' ELSE 'cytube.event.mediaUpdate' END,
               {WHICH_CHANNEL}, {WHEN}, CASE WHEN g % 10 < 2 THEN {PERSON.format(salt=2)} END,
               'vid' || g % 20000, 'yt', 'Video ' || g % 20000, 240,
               jsonb_build_object('currentTime', g % 240, 'paused', false)
        FROM generate_series(1, $1) g""",
    "sessions": f"""
        INSERT INTO daz_user_tracker_sessions (channel, username, rank, joined_at, left_at,
                                               last_activity, is_active)
        SELECT {WHICH_CHANNEL}, {PERSON.format(salt=3)}, 1, {WHEN},
               {WHEN} + interval '40 minutes', {WHEN} + interval '30 minutes', false
        FROM generate_series(1, $1) g
        ON CONFLICT DO NOTHING""",
    "plays": f"""
        INSERT INTO daz_mediatracker_plays (channel, media_id, media_type, title, duration,
                                            started_at, ended_at, queued_by, completed)
        SELECT {WHICH_CHANNEL}, 'vid' || g % 20000, 'yt', 'Video ' || g % 20000, 240, {WHEN},
               {WHEN} + interval '4 minutes', {PERSON.format(salt=4)}, true
        FROM generate_series(1, $1) g""",
    "images": f"""
        INSERT INTO daz_gallery_images (username, url, channel, posted_at, is_active, state,
                                        last_check_at, pruned_reason)
        SELECT {PERSON.format(salt=5)}, 'https://img.example/' || g || '.png', {WHICH_CHANNEL},
               {WHEN}, g % 20 <> 0, CASE WHEN g % 20 = 0 THEN 'dead' ELSE 'active' END,
               {WHEN} + interval '1 day', CASE WHEN g % 20 = 0 THEN 'HTTP 404' END
        FROM generate_series(1, $1) g
        ON CONFLICT DO NOTHING""",
    "health_checks": f"""
        INSERT INTO daz_gallery_health_log (image_id, check_time, status_code, response_time_ms,
                                            previous_status, new_status)
        SELECT i.id, {WHEN}, 200, 80, true, true
        FROM generate_series(1, $1) g
        JOIN daz_gallery_images i ON i.id = 1 + g % (SELECT max(id) FROM daz_gallery_images)""",
    "tells": f"""
        INSERT INTO daz_tell_messages (channel, from_user, to_user, message, created_at,
                                       expires_at, delivered, delivered_at, sent_at)
        SELECT {WHICH_CHANNEL}, {PERSON.format(salt=6)}, {PERSON.format(salt=7)}, 'tell ' || g,
               {WHEN}, {WHEN} + interval '30 days', g % 50 <> 0,
               CASE WHEN g % 50 <> 0 THEN {WHEN} + interval '1 day' END,
               CASE WHEN g % 50 <> 0 THEN {WHEN} + interval '1 day' END
        FROM generate_series(1, $1) g""",
    "pms": f"""
        INSERT INTO daz_private_messages (event_type, from_user, to_user, message, channel,
                                          message_time, timestamp)
        SELECT 'cytube.event.pm', {PERSON.format(salt=8)}, 'dazbot', 'pm ' || g, {WHICH_CHANNEL},
               (extract(epoch FROM {WHEN}) * 1000)::bigint, {WHEN}
        FROM generate_series(1, $1) g""",
    "greetings": f"""
        INSERT INTO daz_greeter_history (channel, username, greeting_type, greeting_text,
                                         created_at)
        SELECT {WHICH_CHANNEL}, {PERSON.format(salt=9)}, 'welcome', 'hello ' || g, {WHEN}
        FROM generate_series(1, $1) g""",
    "preferences": f"""
        INSERT INTO daz_greeter_preferences (channel, username, opted_out, created_at, updated_at)
        SELECT {WHICH_CHANNEL}, {PERSON.format(salt=10)}, g % 3 = 0, {WHEN}, {WHEN}
        FROM generate_series(1, $1) g
        ON CONFLICT DO NOTHING""",
}

BULK_TABLES = ("daz_core_events", "daz_chat_log", "daz_private_messages", "daz_mediatracker_plays",
               "daz_user_tracker_sessions", "daz_gallery_health_log")

# Aggregates, as analytics would have left them: a row per person, per hour and per day.
AGGREGATES = [
    """INSERT INTO daz_analytics_user_stats (channel, username, total_messages, first_seen,
                                              last_seen)
        SELECT channel, username, count(*), min(timestamp), max(timestamp) FROM daz_chat_log
        GROUP BY channel, username ON CONFLICT DO NOTHING""",
    """INSERT INTO daz_analytics_hourly (channel, hour_start, message_count, unique_users)
       SELECT channel, date_trunc('hour', timestamp), count(*), count(DISTINCT username)
       FROM daz_chat_log GROUP BY 1, 2 ON CONFLICT DO NOTHING""",
    """INSERT INTO daz_analytics_daily (channel, day_date, total_messages, unique_users)
       SELECT channel, timestamp::date, count(*), count(DISTINCT username)
       FROM daz_chat_log GROUP BY 1, 2 ON CONFLICT DO NOTHING""",
    """INSERT INTO daz_analytics_hourly_users (channel, hour_start, username)
       SELECT DISTINCT channel, date_trunc('hour', timestamp), username FROM daz_chat_log
       WHERE timestamp > $1::timestamp - interval '8 days' ON CONFLICT DO NOTHING""",
    """INSERT INTO daz_mediatracker_stats (channel, media_type, media_id, title, play_count,
                                           first_played, last_played)
       SELECT channel, media_type, media_id, min(title), count(*), min(started_at),
              max(started_at) FROM daz_mediatracker_plays GROUP BY 1, 2, 3
       ON CONFLICT DO NOTHING""",
]


async def fill(conn: asyncpg.Connection, scale: float, *, end: datetime = END,
               progress=None) -> dict[str, float]:
    """Write the history into a migrated database; returns seconds per part."""
    sizes = Sizes.at(scale)
    took: dict[str, float] = {}
    await conn.execute("SET max_parallel_workers_per_gather = 0")  # row order = plan order
    # A bulk load: indexes are built once at the end, not row by row (several times faster).
    # Constraint indexes stay: the ON CONFLICT clauses above need them.
    indexes = await conn.fetch(
        "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS ddl"
        " FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid"
        " WHERE t.relname = ANY($1::text[]) AND t.relnamespace = 'public'::regnamespace"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        list(BULK_TABLES))
    for row in indexes:
        await conn.execute(f"DROP INDEX {row['name']}")
    for part, sql in STATEMENTS.items():
        started = time.monotonic()
        await conn.execute(sql, getattr(sizes, part), end, timeout=3600)
        took[part] = time.monotonic() - started
        if progress:
            progress(part, getattr(sizes, part), took[part])
    started = time.monotonic()
    await conn.execute("SET maintenance_work_mem = '256MB'")
    for row in indexes:
        await conn.execute(row["ddl"], timeout=3600)
    took["indexes"] = time.monotonic() - started
    if progress:
        progress("indexes", len(indexes), took["indexes"])
    started = time.monotonic()
    for sql in AGGREGATES:
        await (conn.execute(sql, end, timeout=3600) if "$1" in sql
               else conn.execute(sql, timeout=3600))
    await conn.execute("VACUUM ANALYZE", timeout=3600)  # as autovacuum leaves an old database
    took["aggregates"] = time.monotonic() - started
    return took

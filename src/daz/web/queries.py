"""The SQL behind the pages, against the plugins' real tables (Go Daz names and types).

The Go schema keeps UTC wall clock in ``timestamp without time zone`` columns, so every bound
time is a naive UTC datetime. A query that fails (database away, a plugin's table missing
because the plugin is off) gives an empty result and a log line: a page still renders with
whatever it has.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

log = logging.getLogger(__name__)

HOURS_SHOWN = 7 * 24
DAYS_SHOWN = 90
CHAT_LINES_SHOWN = 200
TOP_SHOWN = 10


def naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


async def fetch(db, sql: str, *args: Any) -> list:
    if db is None:
        return []
    try:
        return await db.fetch(sql, *args)
    except Exception as exc:
        log.warning("page query failed: %s", exc)
        return []


def hour_floor(now: datetime) -> datetime:
    return naive_utc(now).replace(minute=0, second=0, microsecond=0)


async def dashboard_figures(db, channel: str, now: datetime) -> dict[str, Any]:
    since_7d = hour_floor(now) - timedelta(hours=HOURS_SHOWN - 1)
    recent = await fetch(db, """
        SELECT title, media_type, media_id, started_at, duration, completed, queued_by
        FROM daz_mediatracker_plays WHERE channel = $1
        ORDER BY started_at DESC, id DESC LIMIT $2""", channel, TOP_SHOWN)
    top_media = await fetch(db, """
        SELECT title, media_type, play_count FROM daz_mediatracker_stats WHERE channel = $1
        ORDER BY play_count DESC, title LIMIT $2""", channel, TOP_SHOWN)
    top_chatters = await fetch(db, """
        SELECT username, total_messages, last_seen FROM daz_analytics_user_stats
        WHERE channel = $1 AND total_messages > 0
        ORDER BY total_messages DESC, username LIMIT $2""", channel, TOP_SHOWN)
    totals = await fetch(db, """
        SELECT coalesce(sum(message_count), 0) AS messages FROM daz_analytics_hourly
        WHERE channel = $1 AND hour_start >= $2""", channel, since_7d)
    active = await fetch(db, """
        SELECT count(DISTINCT lower(username)) AS users FROM daz_analytics_hourly_users
        WHERE channel = $1 AND hour_start >= $2""", channel, since_7d)
    sessions = await fetch(db, """
        SELECT lower(username) AS key, joined_at, observed_at_join
        FROM daz_user_tracker_sessions WHERE channel = $1 AND is_active""", channel)
    return {
        "recent": recent, "top_media": top_media, "top_chatters": top_chatters,
        "messages_7d": int(totals[0]["messages"]) if totals else 0,
        "active_users_7d": int(active[0]["users"]) if active else 0,
        "here_since": {row["key"]: (row["joined_at"], row["observed_at_join"])
                       for row in sessions},
    }


async def chart_series(db, channel: str, now: datetime) -> dict[str, list[dict]]:
    """Hourly (7 days) and daily (90 days) counts, with the empty hours and days as zeros."""
    last_hour = hour_floor(now)
    first_hour = last_hour - timedelta(hours=HOURS_SHOWN - 1)
    last_day = naive_utc(now).date()
    first_day = last_day - timedelta(days=DAYS_SHOWN - 1)
    hourly = await fetch(db, """
        SELECT hour_start, message_count, unique_users FROM daz_analytics_hourly
        WHERE channel = $1 AND hour_start >= $2 AND hour_start <= $3""",
                         channel, first_hour, last_hour)
    daily = await fetch(db, """
        SELECT day_date, total_messages, unique_users FROM daz_analytics_daily
        WHERE channel = $1 AND day_date >= $2 AND day_date <= $3""",
                        channel, first_day, last_day)
    by_hour = {row["hour_start"]: row for row in hourly}
    by_day = {row["day_date"]: row for row in daily}
    hours = [first_hour + timedelta(hours=i) for i in range(HOURS_SHOWN)]
    days = [first_day + timedelta(days=i) for i in range(DAYS_SHOWN)]
    return {
        "hourly": [_point(h.strftime("%m-%d %H:00"), by_hour.get(h), "message_count")
                   for h in hours],
        "daily": [_point(d.isoformat(), by_day.get(d), "total_messages") for d in days],
    }


def _point(label: str, row: Any, messages_column: str) -> dict[str, Any]:
    if row is None:
        return {"t": label, "messages": 0, "users": 0}
    return {"t": label, "messages": int(row[messages_column] or 0),
            "users": int(row["unique_users"] or 0)}


async def chat_lines(db, channel: str) -> list:
    rows = await fetch(db, """
        SELECT username, message, user_rank, "timestamp" FROM daz_chat_log WHERE channel = $1
        ORDER BY "timestamp" DESC, id DESC LIMIT $2""", channel, CHAT_LINES_SHOWN)
    return list(reversed(rows))


async def private_messages(db, channel: str) -> list:
    rows = await fetch(db, """
        SELECT event_type, from_user, to_user, message, "timestamp" FROM daz_private_messages
        WHERE channel = $1 ORDER BY "timestamp" DESC, id DESC LIMIT $2""",
                       channel, CHAT_LINES_SHOWN)
    return list(reversed(rows))


async def user_history(db, channel: str, username: str) -> dict[str, Any]:
    stats = await fetch(db, """
        SELECT username, total_messages, first_seen, last_seen FROM daz_analytics_user_stats
        WHERE channel = $1 AND lower(username) = lower($2)""", channel, username)
    sessions = await fetch(db, """
        SELECT username, rank, joined_at, left_at, last_activity, is_active, observed_at_join
        FROM daz_user_tracker_sessions WHERE channel = $1 AND lower(username) = lower($2)
        ORDER BY joined_at DESC, id DESC LIMIT 20""", channel, username)
    lines = await fetch(db, """
        SELECT username, message, "timestamp" FROM daz_chat_log
        WHERE channel = $1 AND lower(username) = lower($2)
        ORDER BY "timestamp" DESC, id DESC LIMIT 50""", channel, username)
    queued = await fetch(db, """
        SELECT title, started_at, completed FROM daz_mediatracker_plays
        WHERE channel = $1 AND lower(queued_by) = lower($2)
        ORDER BY started_at DESC, id DESC LIMIT 20""", channel, username)
    return {"stats": stats[0] if stats else None, "sessions": sessions,
            "lines": list(reversed(lines)), "queued": queued}

"""The SQL behind the pages, against the plugins' real tables (Go Daz names and types).

The Go schema keeps UTC wall clock in ``timestamp without time zone`` columns, so every bound
time is a naive UTC datetime. A query that fails (database away, a plugin's table missing
because the plugin is off) gives an empty result and a log line: a page still renders with
whatever it has.
"""
from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

HOURS_SHOWN = 7 * 24
CHAT_LINES_SHOWN = 200
TOP_SHOWN = 10


def naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


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
    since_7d = hour_floor(now) - timedelta(hours=HOURS_SHOWN - 1)
    # DISTINCT in a subquery is hashed; count(DISTINCT ...) sorts (twice as slow on a busy
    # channel's week of 10,000+ hour-by-person rows).
    active = await fetch(db, """
        SELECT count(*) AS users FROM (SELECT DISTINCT lower(username)
        FROM daz_analytics_hourly_users WHERE channel = $1 AND hour_start >= $2) AS people""",
                         channel, since_7d)
    return {
        "recent": recent, "top_media": top_media, "top_chatters": top_chatters,
        "active_users_7d": int(active[0]["users"]) if active else 0,
        **await live_base(db, channel, now),
    }


async def live_base(db, channel: str, now: datetime) -> dict[str, Any]:
    """What the live view starts from: messages of the last 7 days (as analytics has written
    them) and since when each person here has been here."""
    since_7d = hour_floor(now) - timedelta(hours=HOURS_SHOWN - 1)
    totals = await fetch(db, """
        SELECT coalesce(sum(message_count), 0) AS messages FROM daz_analytics_hourly
        WHERE channel = $1 AND hour_start >= $2""", channel, since_7d)
    sessions = await fetch(db, """
        SELECT lower(username) AS key, joined_at, observed_at_join
        FROM daz_user_tracker_sessions WHERE channel = $1 AND is_active""", channel)
    return {"messages_7d": int(totals[0]["messages"]) if totals else 0,
            "here_since": {row["key"]: (row["joined_at"], row["observed_at_join"])
                           for row in sessions}}


# name → (how far back, bar size); "all" starts at the channel's first counted day.
RANGES = {"24h": (timedelta(hours=24), "hour"), "7d": (timedelta(days=7), "hour"),
          "90d": (timedelta(days=90), "day"), "all": (None, "day")}
WEEKLY_AFTER_DAYS = 366  # "all" of a channel older than a year has a bar per week


async def first_counted_hour(db, channel: str) -> datetime | None:
    rows = await fetch(db, """
        SELECT hour_start FROM daz_analytics_hourly WHERE channel = $1
        ORDER BY hour_start LIMIT 1""", channel)
    return rows[0]["hour_start"] if rows else None


async def pick_range(db, channel: str, now: datetime) -> str:
    """The shortest range that holds the whole history (a channel that started today shows
    its hours, not 89 empty days); for an older channel 90 days, or everything when those
    90 days are empty."""
    first = await first_counted_hour(db, channel)
    if first is None:
        return "24h"
    age = hour_floor(now) - first
    for name in ("24h", "7d", "90d"):
        limit = RANGES[name][0]
        if limit is not None and age < limit:
            return name
    recent = await fetch(db, """
        SELECT 1 FROM daz_analytics_daily WHERE channel = $1 AND day_date >= $2 LIMIT 1""",
                         channel, naive_utc(now).date() - timedelta(days=89))
    return "90d" if recent else "all"


async def chart_series(db, channel: str, now: datetime, range_name: str = "auto"
                       ) -> dict[str, Any]:
    """Messages and active users per bar over ``range_name`` ("auto": ``pick_range``), with
    the empty bars as zeros."""
    if range_name not in RANGES:
        range_name = await pick_range(db, channel, now)
    span, unit = RANGES[range_name]
    steps: list[date]  # datetimes for hourly bars
    if unit == "hour" and span is not None:
        last = hour_floor(now)
        count = int(span / timedelta(hours=1))
        first = last - timedelta(hours=count - 1)
        rows = await fetch(db, """
            SELECT hour_start AS at, message_count AS messages, unique_users AS users
            FROM daz_analytics_hourly WHERE channel = $1 AND hour_start >= $2
              AND hour_start <= $3""", channel, first, last)
        steps = [first + timedelta(hours=i) for i in range(count)]
        label = "%m-%d %H:00"
    else:
        last_day = naive_utc(now).date()
        if span is None:
            first_hour = await first_counted_hour(db, channel)
            first_day = first_hour.date() if first_hour else last_day
        else:
            first_day = last_day - timedelta(days=span.days - 1)
        weekly = (last_day - first_day).days > WEEKLY_AFTER_DAYS
        if weekly:
            unit = "week"
            first_day -= timedelta(days=first_day.weekday())  # Mondays, as date_trunc
        rows = await fetch(db, """
            SELECT date_trunc($4, day_date)::date AS at, sum(total_messages) AS messages,
                   max(unique_users) AS users
            FROM daz_analytics_daily WHERE channel = $1 AND day_date >= $2 AND day_date <= $3
            GROUP BY 1""", channel, first_day, last_day, unit)
        step = timedelta(days=7 if weekly else 1)
        steps = [first_day + step * i for i in range((last_day - first_day) // step + 1)]
        label = "%Y-%m-%d"
    by_step = {row["at"]: row for row in rows}
    points = [_point(at.strftime(label), by_step.get(at)) for at in steps]
    return {"range": range_name, "unit": unit, "ranges": list(RANGES), "points": points}


def _point(label: str, row: Any) -> dict[str, Any]:
    if row is None:
        return {"t": label, "messages": 0, "users": 0}
    return {"t": label, "messages": int(row["messages"] or 0), "users": int(row["users"] or 0)}


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

"""The dashboard's SQL against the real tables (migrated database): chart windows and zero
filling, totals over the last 7 days, top lists, and the per-user history matched ignoring case."""
from datetime import UTC, datetime, timedelta

from daz.web import queries

NOW = datetime(2026, 3, 10, 15, 40, tzinfo=UTC)
HOUR = datetime(2026, 3, 10, 15, 0)  # naive UTC, as the Go schema stores it


async def seed(db) -> None:
    for hours_ago, messages, users in ((0, 5, 2), (3, 7, 3), (167, 11, 4), (168, 100, 9)):
        await db.execute(
            "INSERT INTO daz_analytics_hourly (channel, hour_start, message_count, unique_users)"
            " VALUES ('c', $1, $2, $3)", HOUR - timedelta(hours=hours_ago), messages, users)
    await db.execute("INSERT INTO daz_analytics_hourly (channel, hour_start, message_count)"
                     " VALUES ('other', $1, 1000)", HOUR)
    for days_ago, messages in ((0, 12), (89, 30), (90, 500)):
        await db.execute("INSERT INTO daz_analytics_daily (channel, day_date, total_messages,"
                         " unique_users) VALUES ('c', $1, $2, 1)",
                         HOUR.date() - timedelta(days=days_ago), messages)
    for hours_ago, name in ((0, "Alice"), (5, "alice"), (2, "bob"), (200, "old")):
        await db.execute("INSERT INTO daz_analytics_hourly_users (channel, hour_start, username)"
                         " VALUES ('c', $1, $2)", HOUR - timedelta(hours=hours_ago), name)
    for name, count in (("alice", 9), ("bob", 9), ("carol", 2), ("zero", 0)):
        await db.execute("INSERT INTO daz_analytics_user_stats (channel, username,"
                         " total_messages, first_seen, last_seen) VALUES ('c', $1, $2, $3, $3)",
                         name, count, HOUR)


async def test_chart_ranges_cover_exactly_their_span_with_zeros(database):
    await seed(database)
    hourly = (await queries.chart_series(database, "c", NOW, "7d"))["points"]
    assert len(hourly) == 168
    assert hourly[-1] == {"t": "03-10 15:00", "messages": 5, "users": 2}
    assert hourly[-4]["messages"] == 7 and hourly[0]["messages"] == 11  # 167 h ago is in
    assert sum(p["messages"] for p in hourly) == 5 + 7 + 11  # 168 h ago and 'other' are not
    assert sum(1 for p in hourly if p["messages"] == 0) == 165
    day = await queries.chart_series(database, "c", NOW, "24h")
    assert (day["unit"], len(day["points"])) == ("hour", 24)
    assert sum(p["messages"] for p in day["points"]) == 5 + 7
    daily = await queries.chart_series(database, "c", NOW, "90d")
    assert (daily["unit"], len(daily["points"])) == ("day", 90)
    assert sum(p["messages"] for p in daily["points"]) == 12 + 30
    assert daily["points"][0]["t"] == "2025-12-11"
    everything = await queries.chart_series(database, "c", NOW, "all")
    assert everything["points"][0]["t"] == "2026-03-03"  # the first counted hour's day
    assert everything["points"][-1]["t"] == "2026-03-10"


async def test_the_default_range_is_one_that_shows_the_history(database):
    async def hour(hours_ago, messages=3):
        at = HOUR - timedelta(hours=hours_ago)
        await database.execute(
            "INSERT INTO daz_analytics_hourly (channel, hour_start, message_count, unique_users)"
            " VALUES ('new', $1, $2, 1)", at, messages)
        await database.execute(
            "INSERT INTO daz_analytics_daily (channel, day_date, total_messages, unique_users)"
            " VALUES ('new', $1, $2, 1) ON CONFLICT (channel, day_date) DO UPDATE"
            " SET total_messages = daz_analytics_daily.total_messages + EXCLUDED.total_messages",
            at.date(), messages)
    assert await queries.pick_range(database, "new", NOW) == "24h"  # nothing at all yet
    await hour(2)  # a channel that started two hours ago: its hours, not 89 empty days
    series = await queries.chart_series(database, "new", NOW)
    assert series["range"] == "24h" and sum(p["messages"] for p in series["points"]) == 3
    await hour(50)
    assert await queries.pick_range(database, "new", NOW) == "7d"
    await hour(24 * 30)
    assert await queries.pick_range(database, "new", NOW) == "90d"
    await hour(24 * 400)
    assert await queries.pick_range(database, "new", NOW) == "90d"  # old, but active lately
    await database.execute("DELETE FROM daz_analytics_daily WHERE channel = 'new'"
                           " AND day_date > $1", (HOUR - timedelta(days=300)).date())
    assert await queries.pick_range(database, "new", NOW) == "all"  # quiet for months
    weekly = await queries.chart_series(database, "new", NOW, "all")
    assert weekly["unit"] == "week" and sum(p["messages"] for p in weekly["points"]) == 3


async def test_dashboard_figures_totals_and_top_lists(database):
    await seed(database)
    figures = await queries.dashboard_figures(database, "c", NOW)
    assert figures["messages_7d"] == 23
    assert figures["active_users_7d"] == 2  # Alice/alice once, bob; 'old' is outside
    assert [(r["username"], r["total_messages"]) for r in figures["top_chatters"]] == [
        ("alice", 9), ("bob", 9), ("carol", 2)]  # ties by name; nobody with 0


async def test_user_history_ignores_case_and_a_missing_database_gives_empty_pages(database):
    await database.execute(
        "INSERT INTO daz_chat_log (username, message, channel, timestamp) VALUES"
        " ('Bob', 'hi &lt;b&gt;', 'c', $1), ('bob', 'again', 'c', $2), ('bob', 'x', 'd', $2)",
        HOUR, HOUR + timedelta(minutes=1))
    await database.execute(
        "INSERT INTO daz_user_tracker_sessions (channel, username, rank, joined_at,"
        " last_activity) VALUES ('c', 'Bob', 1, $1, $1)", HOUR)
    history = await queries.user_history(database, "c", "BOB")
    assert [r["message"] for r in history["lines"]] == ["hi &lt;b&gt;", "again"]
    assert len(history["sessions"]) == 1 and history["stats"] is None
    assert await queries.chat_lines(None, "c") == []
    empty = await queries.chart_series(None, "c", NOW)
    assert empty["range"] == "24h" and len(empty["points"]) == 24
    assert all(p["messages"] == 0 for p in empty["points"])

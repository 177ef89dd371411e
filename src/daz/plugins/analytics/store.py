"""Writing one batch of counts: one transaction, applied at most once.

The batch's ``flush_id`` is inserted into the flush table first, in the same transaction as the
increments. If it is already there, this batch was committed before (the commit succeeded but
our side saw an error, and we retried): nothing is added again. If the transaction fails, the
id is rolled back with everything else and the retry applies the batch normally.

Distinct users are not counted in memory: the names of an hour's chatters go into
``daz_analytics_hourly_users`` (ON CONFLICT DO NOTHING) and ``unique_users`` is recounted from
there for the hours the batch touched. So a restart in the middle of an hour, a retried flush or
two daz processes on one channel still give each hour its exact number of distinct chatters;
the day's ``unique_users`` is counted from the same table, ``peak_users`` is the busiest hour.
"""
from __future__ import annotations

from daz.db.pool import rows_affected
from daz.plugins.analytics.counters import Batch, ChatMark

HOURLY = "daz_analytics_hourly"
DAILY = "daz_analytics_daily"
USERS = "daz_analytics_user_stats"
HOUR_USERS = "daz_analytics_hourly_users"
FLUSHES = "daz_analytics_flushes"


async def write(conn, batch: Batch) -> bool:
    """Apply ``batch``; False when it had already been applied (a retried flush)."""
    async with conn.transaction():
        fresh = await conn.fetchval(
            f"INSERT INTO {FLUSHES} (flush_id) VALUES ($1) ON CONFLICT DO NOTHING"
            " RETURNING flush_id", batch.flush_id)
        if fresh is None:
            return False
        if batch.hours:
            await _hours(conn, batch)
        if batch.users:
            await _users(conn, batch)
        for channel, day in sorted(batch.days()):
            await _day(conn, channel, day)
    return True


async def _hours(conn, batch: Batch) -> None:
    keys = sorted(batch.hours)
    channels = [c for c, _ in keys]
    hours = [float(h) for _, h in keys]
    c = [batch.hours[k] for k in keys]
    await conn.execute(
        f"INSERT INTO {HOURLY} AS h (channel, hour_start, message_count, unique_users,"
        "   media_plays, commands_used, joins, updated_at)"
        " SELECT u.channel, to_timestamp(u.hour), u.messages, 0, u.plays, u.commands, u.joins,"
        "   now()"
        " FROM unnest($1::text[], $2::float8[], $3::bigint[], $4::int[], $5::int[], $6::int[])"
        "   AS u(channel, hour, messages, plays, commands, joins)"
        " ON CONFLICT (channel, hour_start) DO UPDATE SET"
        "   message_count = coalesce(h.message_count, 0) + EXCLUDED.message_count,"
        "   media_plays = coalesce(h.media_plays, 0) + EXCLUDED.media_plays,"
        "   commands_used = coalesce(h.commands_used, 0) + EXCLUDED.commands_used,"
        "   joins = coalesce(h.joins, 0) + EXCLUDED.joins, updated_at = now()",
        channels, hours, [x.messages for x in c], [x.plays for x in c],
        [x.commands for x in c], [x.joins for x in c])
    names = [(ch, float(h), name) for (ch, h) in keys for name in batch.hours[(ch, h)].users]
    if names:
        await conn.execute(
            f"INSERT INTO {HOUR_USERS} (channel, hour_start, username)"
            " SELECT u.channel, to_timestamp(u.hour), u.name"
            " FROM unnest($1::text[], $2::float8[], $3::text[]) AS u(channel, hour, name)"
            " ON CONFLICT DO NOTHING",
            [n[0] for n in names], [n[1] for n in names], [n[2] for n in names])
    await conn.execute(
        f"UPDATE {HOURLY} h SET unique_users = (SELECT count(*) FROM {HOUR_USERS} x"
        "   WHERE x.channel = h.channel AND x.hour_start = h.hour_start)"
        " FROM unnest($1::text[], $2::float8[]) AS u(channel, hour)"
        " WHERE h.channel = u.channel AND h.hour_start = to_timestamp(u.hour)",
        channels, hours)


async def _users(conn, batch: Batch) -> None:
    keys = sorted(batch.users)
    c = [batch.users[k] for k in keys]
    await conn.execute(
        f"INSERT INTO {USERS} AS s (channel, username, total_messages, first_seen, last_seen)"
        " SELECT u.channel, u.name, u.n, to_timestamp(u.first), to_timestamp(u.last)"
        " FROM unnest($1::text[], $2::text[], $3::bigint[], $4::float8[], $5::float8[])"
        "   AS u(channel, name, n, first, last)"
        " ON CONFLICT (channel, username) DO UPDATE SET"
        "   total_messages = coalesce(s.total_messages, 0) + EXCLUDED.total_messages,"
        "   first_seen = least(s.first_seen, EXCLUDED.first_seen),"
        "   last_seen = greatest(s.last_seen, EXCLUDED.last_seen)",
        [k[0] for k in keys], [k[1] for k in keys], [x.messages for x in c],
        [x.first for x in c], [x.last for x in c])


async def _day(conn, channel: str, day) -> None:
    """Recompute one day's row from its hours (idempotent: a replacement, not an increment)."""
    await conn.execute(
        f"INSERT INTO {DAILY} AS d (channel, day_date, total_messages, unique_users,"
        "   total_media_plays, peak_users, active_hours, joins, updated_at)"
        " SELECT $1::text, $2::date, coalesce(sum(h.message_count), 0),"
        f"   (SELECT count(DISTINCT x.username) FROM {HOUR_USERS} x WHERE x.channel = $1::text"
        "      AND x.hour_start >= $2::date AND x.hour_start < $2::date + 1),"
        "   coalesce(sum(h.media_plays), 0), coalesce(max(h.unique_users), 0),"
        "   count(*) FILTER (WHERE h.message_count > 0), coalesce(sum(h.joins), 0), now()"
        f" FROM {HOURLY} h WHERE h.channel = $1::text"
        "   AND h.hour_start >= $2::date AND h.hour_start < $2::date + 1"
        " ON CONFLICT (channel, day_date) DO UPDATE SET"
        "   total_messages = EXCLUDED.total_messages, unique_users = EXCLUDED.unique_users,"
        "   total_media_plays = EXCLUDED.total_media_plays, peak_users = EXCLUDED.peak_users,"
        "   active_hours = EXCLUDED.active_hours, joins = EXCLUDED.joins, updated_at = now()",
        channel, day)


async def user_row(conn, channel: str, username: str):
    return await conn.fetchrow(
        f"SELECT username, total_messages, first_seen, last_seen FROM {USERS}"
        " WHERE channel = $1 AND lower(username) = lower($2)"
        " ORDER BY total_messages DESC LIMIT 1", channel, username)


async def rank_of(conn, channel: str, total: int) -> int:
    """1 + how many people in the channel wrote more lines than ``total``."""
    return 1 + await conn.fetchval(
        f"SELECT count(*) FROM {USERS} WHERE channel = $1 AND total_messages > $2",
        channel, total)


async def cleanup(conn, retention_days: int) -> int:
    """Delete chatter names and flush ids older than ``retention_days``; returns rows deleted."""
    async with conn.transaction():
        names = await conn.execute(
            f"DELETE FROM {HOUR_USERS} WHERE hour_start < (now() AT TIME ZONE 'UTC')"
            " - make_interval(days => $1)", retention_days)
        flushes = await conn.execute(
            f"DELETE FROM {FLUSHES} WHERE applied_at < now() - make_interval(days => $1)",
            retention_days)
    return rows_affected(names) + rows_affected(flushes)


async def newest_chat(conn, channel: str) -> ChatMark:
    """The channel's newest stored chat lines: their CyTube ms time and (sender, message) of
    each said in that millisecond (the partial unique index on chat rows finds them)."""
    rows = await conn.fetch(
        "SELECT message_time, username, message FROM daz_core_events"
        " WHERE channel_name = $1 AND event_type = 'cytube.event.chatMsg' AND message_time = ("
        "   SELECT max(message_time) FROM daz_core_events"
        "   WHERE channel_name = $1 AND event_type = 'cytube.event.chatMsg')", channel)
    if not rows:
        return ChatMark()
    return ChatMark(rows[0]["message_time"], {(r["username"] or "", r["message"] or "")
                                              for r in rows})

"""The greeter's SQL. Times go in as epoch seconds (``to_timestamp``), so the TIMESTAMP columns
hold UTC wall clock (sessions run in UTC) and a test clock decides what "now" is.

Names are matched ignoring case, as CyTube does.
"""
from __future__ import annotations

H = "daz_greeter_history"
P = "daz_greeter_preferences"
S = "daz_greeter_state"
SESSIONS = "daz_user_tracker_sessions"

OPT_OUT_REASON = "User requested via !greeter command"


async def opted_out(conn, channel: str, username: str) -> bool:
    return await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {P} WHERE channel = $1 AND lower(username) = lower($2)"
        " AND opted_out)", channel, username)


async def set_opt_out(conn, channel: str, username: str, out: bool, t: float) -> None:
    """Every row of this name (Go's key is case-sensitive, so there may be several) follows."""
    async with conn.transaction():
        updated = await conn.execute(
            f"UPDATE {P} SET opted_out = $3, opt_out_reason = $4, updated_at = to_timestamp($5)"
            " WHERE channel = $1 AND lower(username) = lower($2)",
            channel, username, out, OPT_OUT_REASON if out else "", t)
        if updated.endswith(" 0"):
            await conn.execute(
                f"INSERT INTO {P} (channel, username, opted_out, opt_out_reason, created_at,"
                " updated_at) VALUES ($1, $2, $3, $4, to_timestamp($5), to_timestamp($5))"
                " ON CONFLICT (channel, username) DO UPDATE SET opted_out = EXCLUDED.opted_out,"
                " opt_out_reason = EXCLUDED.opt_out_reason, updated_at = EXCLUDED.updated_at",
                channel, username, out, OPT_OUT_REASON if out else "", t)


async def greeted_since(conn, channel: str, username: str, since: float) -> bool:
    return await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {H} WHERE channel = $1 AND lower(username) = lower($2)"
        " AND created_at > to_timestamp($3))", channel, username, since)


async def last_greeting_text(conn, channel: str, username: str) -> str | None:
    return await conn.fetchval(
        f"SELECT greeting_text FROM {H} WHERE channel = $1 AND lower(username) = lower($2)"
        " ORDER BY created_at DESC, id DESC LIMIT 1", channel, username)


async def first_visit(conn, channel: str, username: str, before: float,
                      use_sessions: bool) -> bool:
    """Never greeted here, and (when the usertracker's table exists) no stay that began before
    ``before`` (the current join's own session, written at the same moment, does not count)."""
    greeted = await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {H} WHERE channel = $1"
        " AND lower(username) = lower($2))", channel, username)
    if greeted or not use_sessions:
        return not greeted
    seen = await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {SESSIONS} WHERE channel = $1"
        " AND lower(username) = lower($2) AND joined_at < to_timestamp($3))",
        channel, username, before)
    return not seen


async def left_recently(conn, channel: str, username: str, since: float, until: float) -> bool:
    """A stay of this user ended in [since, until): they are back from a short absence."""
    return await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {SESSIONS} WHERE channel = $1"
        " AND lower(username) = lower($2) AND left_at >= to_timestamp($3)"
        " AND left_at < to_timestamp($4))", channel, username, since, until)


async def claim_channel(conn, channel: str, username: str, t: float, channel_cooldown: float,
                        user_cooldown: float, force: bool = False) -> bool:
    """Take the channel's turn to greet, atomically (two daz processes on one database cannot
    both greet). Refused while the channel cooldown runs, or when the last greeting went to
    this same user within the user cooldown. Counts the greeting once."""
    got = await conn.fetchval(
        f"INSERT INTO {S} AS s (channel, last_greeting_at, last_greeting_user,"
        " total_greetings_sent, created_at, updated_at)"
        " VALUES ($1, to_timestamp($3), $2, 1, to_timestamp($3), to_timestamp($3))"
        " ON CONFLICT (channel) DO UPDATE SET last_greeting_at = EXCLUDED.last_greeting_at,"
        " last_greeting_user = EXCLUDED.last_greeting_user,"
        " total_greetings_sent = coalesce(s.total_greetings_sent, 0) + 1,"
        " updated_at = EXCLUDED.updated_at"
        " WHERE $6 OR s.last_greeting_at IS NULL OR (s.last_greeting_at <= to_timestamp($3 - $4)"
        "   AND NOT (lower(coalesce(s.last_greeting_user, '')) = lower($2)"
        "            AND s.last_greeting_at > to_timestamp($3 - $5)))"
        " RETURNING s.id", channel, username, t, float(channel_cooldown), float(user_cooldown),
        force)
    return got is not None


async def record(conn, greeting: dict) -> bool:
    """One history row per greeting id; True when this call wrote it. With ``count_state`` (the
    claim could not be made when it was sent) the channel's state is brought up to date too."""
    async with conn.transaction():
        inserted = await conn.fetchval(
            f"INSERT INTO {H} (channel, username, greeting_type, greeting_text,"
            " greeting_metadata, created_at) VALUES ($1, $2, $3, $4, $5::jsonb, to_timestamp($6))"
            " ON CONFLICT ((greeting_metadata ->> 'greeting_id'))"
            " WHERE greeting_metadata ? 'greeting_id' DO NOTHING RETURNING id",
            greeting["channel"], greeting["username"], greeting["type"], greeting["text"],
            greeting["metadata"], greeting["t"])
        if inserted is not None and greeting.get("count_state"):
            await conn.execute(
                f"INSERT INTO {S} AS s (channel, last_greeting_at, last_greeting_user,"
                " total_greetings_sent, created_at, updated_at)"
                " VALUES ($1, to_timestamp($3), $2, 1, to_timestamp($3), to_timestamp($3))"
                " ON CONFLICT (channel) DO UPDATE SET"
                " total_greetings_sent = coalesce(s.total_greetings_sent, 0) + 1,"
                " last_greeting_at = greatest(s.last_greeting_at, EXCLUDED.last_greeting_at),"
                " last_greeting_user = CASE WHEN s.last_greeting_at IS NULL"
                "   OR s.last_greeting_at <= EXCLUDED.last_greeting_at"
                "   THEN EXCLUDED.last_greeting_user ELSE s.last_greeting_user END,"
                " updated_at = EXCLUDED.updated_at",
                greeting["channel"], greeting["username"], greeting["t"])
    return inserted is not None

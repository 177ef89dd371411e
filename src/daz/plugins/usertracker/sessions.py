"""The SQL of the user tracker: sessions and history, one transaction per event.

Every write is idempotent against a second daz process handling the same event, and against
being applied again after the connection died around its COMMIT (the plugin re-applies writes
held during a database outage): the partial unique index (one active session per channel and
user) makes the second insert a no-op (``ON CONFLICT DO NOTHING``), history rows are only
written by whoever actually changed a session (``RETURNING`` tells), and an AFK row is known by
its exact time. Times are passed as epoch seconds and turned into timestamps by
PostgreSQL (``to_timestamp``), so the code works whether a column is ``timestamp`` (Go Daz,
UTC wall clock; our sessions run in UTC) or ``timestamptz``.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from daz.db.pool import rows_affected

S = "daz_user_tracker_sessions"
H = "daz_user_tracker_history"


def _rank(value: float) -> int:
    # The Go schema stores an integer rank; CyTube user ranks are whole numbers in practice.
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return 0


async def optional_columns(conn) -> set[str]:
    """Columns beyond the Go schema that this database has (the schema may add them)."""
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = $1", S)
    return {r["column_name"] for r in rows}


HistoryRow = tuple[str, str, str, float, dict[str, Any] | None]


async def history(conn, rows: Iterable[HistoryRow]) -> None:
    # jsonb parameters take Python values: the pool's codec encodes them (daz.db.pool).
    rows = list(rows)
    if rows:
        await conn.executemany(
            f"INSERT INTO {H} (channel, username, event_type, timestamp, metadata)"
            " VALUES ($1, $2, $3, to_timestamp($4), $5::jsonb)", rows)


async def join(conn, channel: str, username: str, rank: float, t: float,
               dedupe_seconds: float) -> bool:
    """A real join: close a stale session (we missed its leave), open a new one.

    A session opened less than ``dedupe_seconds`` ago is the same join seen by another daz
    process (or a repeated frame): it is kept and nothing is written. Returns True when a session
    was opened.
    """
    async with conn.transaction():
        stale = await conn.fetch(
            f"UPDATE {S} SET is_active = false, left_at = to_timestamp($3)"
            " WHERE channel = $1 AND lower(username) = lower($2) AND is_active"
            " AND joined_at < to_timestamp($3 - $4::float8) RETURNING username", channel,
            username, t, dedupe_seconds)
        opened = await conn.fetchval(
            f"INSERT INTO {S} (channel, username, rank, joined_at, last_activity, is_active)"
            " VALUES ($1, $2, $3, to_timestamp($4), to_timestamp($4), true)"
            " ON CONFLICT DO NOTHING RETURNING id", channel, username, _rank(rank), t)
        if opened is None:
            return False
        rows: list[HistoryRow] = [(channel, r["username"], "leave", t, {"reason": "missed_leave"})
                                  for r in stale]
        rows.append((channel, username, "join", t, {"rank": _rank(rank), "from_userlist": False}))
        await history(conn, rows)
        return True


async def leave(conn, channel: str, username: str, t: float, reason: str | None = None) -> bool:
    async with conn.transaction():
        closed = await conn.fetch(
            f"UPDATE {S} SET is_active = false, left_at = to_timestamp($3),"
            " last_activity = greatest(last_activity, to_timestamp($3))"
            " WHERE channel = $1 AND lower(username) = lower($2) AND is_active"
            " RETURNING username", channel, username, t)
        if closed:
            await history(conn, [(channel, closed[0]["username"], "leave", t,
                                  {"reason": reason} if reason else None)])
        return bool(closed)


async def reconcile(conn, channel: str, users: list[tuple[str, float]], t: float,
                    bot_name: str, observed_column: str | None, *,
                    watched_until: float | None = None,
                    watching_since: float | None = None) -> tuple[list[str], list[str]]:
    """Make the open sessions of ``channel`` match a full user list seen at ``t``.

    * present with an open session: kept, joined_at untouched (rank refreshed);
    * present without one: opened at ``t`` (we did not see the join; flagged when the schema has
      a column for it, and the history row says ``from_userlist``);
    * open but absent: closed. When they left is unknown: they were there at their own last
      sign of life, and may have stayed while daz was still watching, so they end at the later
      of the two. Until when daz watched is ``watched_until`` (this process saw the room drop),
      else the end of daz's own earlier session in the channel (one that began before
      ``watching_since``, the current connection, says nothing about the gap). Without either
      (a Go-era database, a new bot name, an anonymous bot's first start) they end at their
      last sign of life, never at ``t``: that would make ``!seen`` say "just now" for someone
      gone for hours.
    Returns (opened, closed) user names.
    """
    names = [n for n, _ in users]
    lowered = [n.lower() for n in names]
    ranks = [_rank(r) for _, r in users]
    async with conn.transaction():
        # Serialise reconciliations of one channel across daz processes.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('daz_user_tracker:' || $1))",
                           channel)
        # The CTE reads daz's own sessions before this UPDATE may close a stale one of them.
        closed = await conn.fetch(
            f"WITH own AS (SELECT max(coalesce(left_at, last_activity)) AS until FROM {S}"
            "   WHERE channel = $1 AND $4 <> '' AND lower(username) = lower($4)"
            "   AND ($6::float8 IS NULL OR joined_at < to_timestamp($6::float8))),"
            " bound AS (SELECT coalesce(to_timestamp($5::float8), (SELECT until FROM own))"
            "   AS until)"
            f" UPDATE {S} SET is_active = false, left_at = greatest(joined_at, last_activity,"
            "   (SELECT least(to_timestamp($3), until) FROM bound WHERE until IS NOT NULL))"
            " WHERE channel = $1 AND is_active AND NOT (lower(username) = ANY($2::text[]))"
            " RETURNING username, left_at", channel, lowered, t, bot_name or "", watched_until,
            watching_since)
        await conn.execute(
            f"UPDATE {S} s SET rank = u.rank FROM unnest($2::text[], $3::int[]) AS u(name, rank)"
            " WHERE s.channel = $1 AND s.is_active AND lower(s.username) = u.name"
            " AND s.rank IS DISTINCT FROM u.rank", channel, lowered, ranks)
        flag_col, flag_val = (f", {observed_column}", ", true") if observed_column else ("", "")
        opened = await conn.fetch(
            f"INSERT INTO {S} (channel, username, rank, joined_at, last_activity, is_active"
            f"{flag_col}) SELECT $1, u.name, u.rank, to_timestamp($4), to_timestamp($4), true"
            f"{flag_val} FROM unnest($2::text[], $3::int[]) AS u(name, rank)"
            " ON CONFLICT DO NOTHING RETURNING username, rank", channel, names, ranks, t)
        rows: list[HistoryRow] = [(channel, r["username"], "leave", t,
                                   {"reason": "absent_at_resync"}) for r in closed]
        rows += [(channel, r["username"], "join", t,
                  {"rank": r["rank"], "from_userlist": True, "observed_at_join": True})
                 for r in opened]
        await history(conn, rows)
    return [r["username"] for r in opened], [r["username"] for r in closed]


async def rank_changed(conn, channel: str, username: str, rank: float, t: float) -> bool:
    """Record a rank change; the repeat CyTube sends on every registered login is not one."""
    async with conn.transaction():
        old = await conn.fetchrow(
            f"UPDATE {S} s SET rank = $3 FROM (SELECT id, rank FROM {S}"
            "   WHERE channel = $1 AND lower(username) = lower($2) AND is_active FOR UPDATE) o"
            " WHERE s.id = o.id AND o.rank IS DISTINCT FROM $3 RETURNING o.rank, s.username",
            channel, username, _rank(rank))
        if old is None:
            return False
        await history(conn, [(channel, old["username"], "rank", t,
                              {"rank": _rank(rank), "old_rank": old["rank"]})])
        return True


async def afk_changed(conn, channel: str, username: str, afk: bool, t: float,
                      afk_column: str | None) -> bool:
    """AFK is presence detail, never absence: the session stays open.

    Applied again after a connection died around COMMIT, it writes nothing: the change is known
    by its user, kind and exact time (the history index covers that lookup)."""
    kind = "afk" if afk else "back"
    async with conn.transaction():
        if afk_column:
            await conn.execute(
                f"UPDATE {S} SET {afk_column} = $3 WHERE channel = $1"
                " AND lower(username) = lower($2) AND is_active", channel, username, afk)
        written = await conn.fetchval(
            f"INSERT INTO {H} (channel, username, event_type, timestamp, metadata)"
            " SELECT $1::varchar, $2::varchar, $3::varchar, to_timestamp($4), $5::jsonb"
            " WHERE NOT EXISTS ("
            f"   SELECT 1 FROM {H} WHERE channel = $1 AND username = $2 AND event_type = $3"
            "   AND timestamp = to_timestamp($4)) RETURNING id",
            channel, username, kind, t, {"afk": afk})
        return written is not None


async def touch(conn, batch: dict[str, dict[str, tuple[str, float]]]) -> int:
    """One statement for the batched last-chat times of every channel (channel → lower-cased
    name → (name, epoch)): one round trip per flush however many rooms are held."""
    channels: list[str] = []
    names: list[str] = []
    times: list[float] = []
    for channel, activity in batch.items():
        for key, (_, when) in activity.items():
            channels.append(channel)
            names.append(key)
            times.append(when)
    if not names:
        return 0
    result = await conn.execute(
        f"UPDATE {S} s SET last_activity = greatest(s.last_activity, to_timestamp(u.t))"
        " FROM unnest($1::text[], $2::text[], $3::float8[]) AS u(channel, name, t)"
        " WHERE s.channel = u.channel AND s.is_active AND lower(s.username) = u.name",
        channels, names, times)
    return rows_affected(result)


async def lookup(conn, channel: str, username: str):
    """The newest session of a user in a channel (open sessions first)."""
    return await conn.fetchrow(
        f"SELECT username, joined_at, left_at, last_activity, is_active FROM {S}"
        " WHERE channel = $1 AND lower(username) = lower($2)"
        " ORDER BY is_active DESC, coalesce(left_at, last_activity) DESC, id DESC LIMIT 1",
        channel, username)

"""The tell plugin's SQL. Times go in as epoch seconds (``to_timestamp``), so the TIMESTAMP
columns hold UTC wall clock (sessions run in UTC) and a test clock decides what "now" is.

Delivery is a claim: ``claim`` marks a recipient's pending rows delivered *and* names the
claiming process in one UPDATE, so of two processes (or two triggers) exactly one gets each row;
the messages are sent after that commits, then ``mark_sent`` records it. A claim that never got
``sent_at`` (the process died in between) is released by ``release_stale`` after a timeout.
"""
from __future__ import annotations

T = "daz_tell_messages"
SESSIONS = "daz_user_tracker_sessions"
COLUMNS = "id, from_user, to_user, message, is_pm, created_at, expires_at"


async def add(conn, *, channel: str, sender: str, recipient: str, message: str, is_pm: bool,
              t: float, expires: float, max_per_sender: int,
              max_per_recipient: int) -> tuple[int | None, str]:
    """Insert a tell unless a cap is reached. Returns (id, "") or (None, "sender"|"recipient").

    The caps count pending, unexpired rows only, under a per-channel advisory lock, so two
    concurrent ``!tell``s (in one process or two) cannot both slip under a cap.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('daz_tell:' || $1))", channel)
        counts = await conn.fetchrow(
            f"SELECT count(*) FILTER (WHERE lower(from_user) = lower($2)) AS by_sender,"
            f" count(*) FILTER (WHERE lower(to_user) = lower($3)) AS for_recipient"
            f" FROM {T} WHERE channel = $1 AND delivered = false"
            " AND expires_at > to_timestamp($4)"
            " AND (lower(from_user) = lower($2) OR lower(to_user) = lower($3))",
            channel, sender, recipient, t)
        if counts["by_sender"] >= max_per_sender:
            return None, "sender"
        if counts["for_recipient"] >= max_per_recipient:
            return None, "recipient"
        new_id = await conn.fetchval(
            f"INSERT INTO {T} (channel, from_user, to_user, message, is_pm, created_at,"
            " expires_at, delivered) VALUES ($1, $2, $3, $4, $5, to_timestamp($6),"
            " to_timestamp($7), false) RETURNING id",
            channel, sender, recipient, message, is_pm, t, expires)
    return new_id, ""


async def claim(conn, channel: str, recipient: str, t: float, claimer: str) -> list:
    """Atomically take every pending, unexpired message for this recipient (oldest first)."""
    rows = await conn.fetch(
        f"UPDATE {T} SET delivered = true, delivered_at = to_timestamp($3), claimed_by = $4,"
        " sent_at = NULL"
        f" WHERE id IN (SELECT id FROM {T} WHERE channel = $1 AND lower(to_user) = lower($2)"
        "   AND delivered = false AND expires_at > to_timestamp($3)"
        "   FOR UPDATE SKIP LOCKED)"
        f" AND delivered = false RETURNING {COLUMNS}", channel, recipient, t, claimer[:64])
    return sorted(rows, key=lambda r: (r["created_at"], r["id"]))


async def mark_sent(conn, ids: list[int], t: float, claimer: str) -> int:
    result = await conn.execute(
        f"UPDATE {T} SET sent_at = to_timestamp($2) WHERE id = ANY($1::int[])"
        " AND claimed_by = $3 AND sent_at IS NULL", ids, t, claimer[:64])
    return int(result.split()[-1])


async def release(conn, ids: list[int], claimer: str) -> int:
    """Give back claimed messages that were not sent (so they are delivered later)."""
    result = await conn.execute(
        f"UPDATE {T} SET delivered = false, delivered_at = NULL, claimed_by = NULL"
        " WHERE id = ANY($1::int[]) AND claimed_by = $2 AND sent_at IS NULL", ids,
        claimer[:64])
    return int(result.split()[-1])


async def release_stale(conn, t: float, timeout: float) -> int:
    """Claims older than ``timeout`` that were never confirmed: their process died mid-way."""
    result = await conn.execute(
        f"UPDATE {T} SET delivered = false, delivered_at = NULL, claimed_by = NULL"
        " WHERE delivered AND sent_at IS NULL AND claimed_by IS NOT NULL"
        " AND delivered_at < to_timestamp($1 - $2::float8) AND expires_at > to_timestamp($1)",
        t, timeout)
    return int(result.split()[-1])


async def purge_expired(conn, t: float) -> int:
    result = await conn.execute(f"DELETE FROM {T} WHERE expires_at < to_timestamp($1)", t)
    return int(result.split()[-1])


async def pending_from(conn, channel: str, sender: str, t: float) -> list:
    return await conn.fetch(
        f"SELECT {COLUMNS} FROM {T} WHERE channel = $1 AND lower(from_user) = lower($2)"
        " AND delivered = false AND expires_at > to_timestamp($3) ORDER BY created_at, id",
        channel, sender, t)


async def cancel_id(conn, channel: str, sender: str, tell_id: int) -> str | None:
    """The recipient of the cancelled tell, or None when the sender has no such pending tell."""
    return await conn.fetchval(
        f"DELETE FROM {T} WHERE id = $3 AND channel = $1 AND lower(from_user) = lower($2)"
        " AND delivered = false RETURNING to_user", channel, sender, tell_id)


async def cancel_for(conn, channel: str, sender: str, recipient: str) -> int:
    result = await conn.execute(
        f"DELETE FROM {T} WHERE channel = $1 AND lower(from_user) = lower($2)"
        " AND lower(to_user) = lower($3) AND delivered = false", channel, sender, recipient)
    return int(result.split()[-1])


async def known_here(conn, channel: str, name: str) -> bool | None:
    """Whether the usertracker ever saw this name here; None when its table does not exist."""
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", SESSIONS):
        return None
    return await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {SESSIONS} WHERE channel = $1"
        " AND lower(username) = lower($2))", channel, name)

"""The tell plugin's SQL. Times go in as epoch seconds (``to_timestamp``), so the TIMESTAMP
columns hold UTC wall clock (sessions run in UTC) and a test clock decides what "now" is.

Delivery is a claim: ``claim`` marks a recipient's pending rows delivered *and* names the
claiming process in one UPDATE, so of two processes (or two triggers) exactly one gets each row;
the messages are sent after that commits, then ``mark_sent`` records it. A claim that never got
``sent_at`` (the process died in between) is released by ``release_stale`` after a timeout.
"""
from __future__ import annotations

import hashlib

from daz.db.pool import rows_affected, table_exists

T = "daz_tell_messages"
SESSIONS = "daz_user_tracker_sessions"
COLUMNS = "id, from_user, to_user, message, is_pm, created_at, expires_at"


def source_key(channel: str, *, sender: str, text: str, server_ms: int,
               pm_to: str | None = None) -> str | None:
    """The key of the chat line (or PM to ``pm_to``) a tell came from, or None without a time.

    Every process in the channel gets the same line with the same server time, so they derive
    the same key; without the server's time they could not agree, and a key made up locally
    would only risk merging two genuine tells.
    """
    if not server_ms:
        return None
    kind = f"pm:{pm_to.lower()}" if pm_to is not None else "chat"
    raw = "\0".join((channel, kind, str(server_ms), sender.lower(), text))
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


async def add(conn, *, channel: str, sender: str, recipient: str, message: str, is_pm: bool,
              t: float, expires: float, max_per_sender: int, max_per_recipient: int,
              key: str | None = None) -> tuple[int | None, str]:
    """Insert a tell unless a cap is reached or its line was stored already.

    Returns (id, "") or (None, "sender"|"recipient"|"duplicate"). The caps count pending,
    unexpired rows only, under a per-channel advisory lock, so two concurrent ``!tell``s (in one
    process or two) cannot both slip under a cap. The ``key`` is looked at first, under the same
    lock: a second process handling the same line must hear "duplicate", never a cap its twin's
    row has just filled.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('daz_tell:' || $1))", channel)
        if key is not None and await conn.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM {T} WHERE source_key = $1)", key):
            return None, "duplicate"
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
        # The lock makes the check above enough; the unique index is what guarantees it.
        new_id = await conn.fetchval(
            f"INSERT INTO {T} (channel, from_user, to_user, message, is_pm, created_at,"
            " expires_at, delivered, source_key) VALUES ($1, $2, $3, $4, $5, to_timestamp($6),"
            " to_timestamp($7), false, $8) ON CONFLICT (source_key) DO NOTHING RETURNING id",
            channel, sender, recipient, message, is_pm, t, expires, key)
    return (new_id, "") if new_id is not None else (None, "duplicate")


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


async def pending_recipients(conn, channels: list[str], t: float) -> dict[str, set[str]]:
    """Per channel, the lower-cased names with a pending, unexpired tell (channels with none
    are present with an empty set)."""
    rows = await conn.fetch(
        f"SELECT DISTINCT channel, lower(to_user) AS name FROM {T}"
        " WHERE channel = ANY($1::text[]) AND delivered = false"
        " AND expires_at > to_timestamp($2)", channels, t)
    found: dict[str, set[str]] = {channel: set() for channel in channels}
    for row in rows:
        found[row["channel"]].add(row["name"])
    return found


async def mark_sent(conn, ids: list[int], t: float, claimer: str) -> int:
    result = await conn.execute(
        f"UPDATE {T} SET sent_at = to_timestamp($2) WHERE id = ANY($1::int[])"
        " AND claimed_by = $3 AND sent_at IS NULL", ids, t, claimer[:64])
    return rows_affected(result)


async def release(conn, ids: list[int], claimer: str) -> int:
    """Give back claimed messages that were not sent (so they are delivered later)."""
    result = await conn.execute(
        f"UPDATE {T} SET delivered = false, delivered_at = NULL, claimed_by = NULL"
        " WHERE id = ANY($1::int[]) AND claimed_by = $2 AND sent_at IS NULL", ids,
        claimer[:64])
    return rows_affected(result)


async def release_stale(conn, t: float, timeout: float) -> int:
    """Claims older than ``timeout`` that were never confirmed: their process died mid-way."""
    result = await conn.execute(
        f"UPDATE {T} SET delivered = false, delivered_at = NULL, claimed_by = NULL"
        " WHERE delivered AND sent_at IS NULL AND claimed_by IS NOT NULL"
        " AND delivered_at < to_timestamp($1 - $2::float8) AND expires_at > to_timestamp($1)",
        t, timeout)
    return rows_affected(result)


async def purge_expired(conn, t: float) -> int:
    result = await conn.execute(f"DELETE FROM {T} WHERE expires_at < to_timestamp($1)", t)
    return rows_affected(result)


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
    return rows_affected(result)


async def known_here(conn, channel: str, name: str) -> bool | None:
    """Whether the usertracker ever saw this name here; None when its table does not exist."""
    if not await table_exists(conn, SESSIONS):
        return None
    return await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {SESSIONS} WHERE channel = $1"
        " AND lower(username) = lower($2))", channel, name)

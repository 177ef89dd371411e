"""SQL for plays, per-media stats and the library's play counts.

Times go in as epoch seconds through ``to_timestamp`` (works for the Go schema's ``timestamp``
columns, written as UTC wall clock, and for ``timestamptz``).

Every write may be applied twice (the plugin re-applies writes held during a database outage,
and one may have reached COMMIT before the connection died), so each is idempotent: a play is
known by its channel, media and exact start time; the seconds already added to the stats are
recorded in the play row (``metadata.credited``) in the same transaction, so ending a play
again adds nothing.
"""
from __future__ import annotations

import json

from daz.plugins.mediatracker.plays import Play, media_url

P = "daz_mediatracker_plays"
ST = "daz_mediatracker_stats"
L = "daz_mediatracker_library"


async def find_play(conn, play: Play) -> int | None:
    """The row of ``play``: its id when known, else by channel, media and start time."""
    if play.play_id is not None:
        return play.play_id
    return await conn.fetchval(
        f"SELECT id FROM {P} WHERE channel = $1 AND media_id = $2"
        " AND started_at = to_timestamp($3) ORDER BY id LIMIT 1", play.channel,
        play.media_id[:255], play.started_at)


async def start_play(conn, play: Play) -> int:
    """A new play: its row, +1 in the channel's stats and +1 in the library (one transaction).

    Already written (applied again): its id, and nothing counted twice. A play of the channel
    left open (its end was lost with a write the database refused) is closed first, at this
    start at the latest, so the one-open-play index cannot refuse the new one."""
    async with conn.transaction():
        existing = await find_play(conn, play)
        if existing is not None:
            return existing
        await conn.execute(
            f"UPDATE {P} SET ended_at = greatest(started_at, CASE WHEN duration > 0 THEN"
            "   least(to_timestamp($2), started_at + make_interval(secs => duration))"
            "   ELSE to_timestamp($2) END)"
            " WHERE channel = $1 AND ended_at IS NULL", play.channel, play.started_at)
        play_id = await conn.fetchval(
            f"INSERT INTO {P} (channel, media_id, media_type, title, duration, started_at,"
            "   queued_by, completed, metadata)"
            " VALUES ($1, $2, $3, $4, $5, to_timestamp($6), $7, false, $8::jsonb) RETURNING id",
            play.channel, play.media_id[:255], play.media_type[:50], play.title, play.duration,
            play.started_at, play.queued_by[:255] or None, play.metadata())
        await conn.execute(
            f"INSERT INTO {ST} AS s (channel, media_id, media_type, title, play_count,"
            "   total_duration, last_played, first_played)"
            " VALUES ($1, $2, $3, $4, 1, 0, to_timestamp($5), to_timestamp($5))"
            " ON CONFLICT (channel, media_id) DO UPDATE SET"
            "   play_count = coalesce(s.play_count, 0) + 1, last_played = EXCLUDED.last_played,"
            "   title = EXCLUDED.title, media_type = EXCLUDED.media_type,"
            "   first_played = coalesce(s.first_played, EXCLUDED.first_played)",
            play.channel, play.media_id[:255], play.media_type[:50], play.title,
            play.started_at)
        await count_library_play(conn, play)
    return play_id


async def count_library_play(conn, play: Play) -> None:
    # Matched on (media_id, media_type), the library's other unique key, so a row whose URL was
    # built differently (older code) is still the same media and is never inserted twice.
    args = (play.media_id[:255], play.media_type[:50], play.started_at)
    sql_update = (f"UPDATE {L} SET play_count = coalesce(play_count, 0) + 1,"
                  " last_played = to_timestamp($3) WHERE media_id = $1 AND media_type = $2")
    if (await conn.execute(sql_update, *args)).endswith(" 0"):
        inserted = await conn.fetchval(
            f"INSERT INTO {L} (url, media_id, media_type, title, duration, first_seen,"
            "   last_played, play_count, added_by, channel)"
            " VALUES ($1, $2, $3, $4, $5, to_timestamp($6), to_timestamp($6), 1, $7, $8)"
            " ON CONFLICT DO NOTHING RETURNING id",
            media_url(play.media_type, play.media_id), play.media_id[:255],
            play.media_type[:50], play.title, play.duration, play.started_at,
            play.queued_by[:100] or None, play.channel[:100])
        if inserted is None:  # another writer inserted it a moment ago
            await conn.execute(sql_update, *args)


async def end_play(conn, play: Play, t: float) -> None:
    """Close the row and add the newly played seconds to the stats (idempotent per second:
    the row says how many were already added)."""
    async with conn.transaction():
        play_id = await find_play(conn, play)
        if play_id is None:
            return
        row = await conn.fetchrow(
            f"SELECT metadata->>'credited' AS credited, metadata->>'played' AS played"
            f" FROM {P} WHERE id = $1 FOR UPDATE", play_id)
        if row is None:
            return
        # Rows written before 'credited' existed had their stats updated up to 'played'.
        before = row["credited"] if row["credited"] is not None else row["played"]
        credited = float(before) if before is not None else play.credited
        delta = round(play.played) - round(credited)
        meta = {**play.metadata(), "credited": round(max(play.played, credited), 3)}
        await conn.execute(
            f"UPDATE {P} SET ended_at = to_timestamp($2), completed = $3,"
            " metadata = coalesce(metadata, '{}'::jsonb) || $4::jsonb WHERE id = $1",
            play_id, t, play.completed, meta)
        if delta > 0:
            await conn.execute(
                f"UPDATE {ST} SET total_duration = coalesce(total_duration, 0) + $3"
                " WHERE channel = $1 AND media_id = $2", play.channel, play.media_id[:255],
                delta)
    play.credited = play.played


async def reopen_play(conn, play: Play) -> None:
    """The play we closed when the room disconnected is still going after the reconnect."""
    async with conn.transaction():
        play_id = await find_play(conn, play)
        if play_id is not None:
            await conn.execute(f"UPDATE {P} SET ended_at = NULL, completed = false WHERE id = $1",
                               play_id)


async def last_play(conn, channel: str) -> Play | None:
    """The channel's newest play row, as a ``Play`` (to carry on after a restart).

    Older rows left open (a crash, or Go Daz, which never closed its last play) are closed at
    their nominal end, so only one play per channel is ever open.
    """
    row = await conn.fetchrow(
        f"SELECT id, media_id, media_type, title, duration, queued_by, metadata,"
        "   extract(epoch FROM started_at)::float8 AS started,"
        "   extract(epoch FROM ended_at)::float8 AS ended"
        f" FROM {P} WHERE channel = $1 ORDER BY started_at DESC, id DESC LIMIT 1", channel)
    if row is None:
        return None
    await conn.execute(
        f"UPDATE {P} SET ended_at = started_at + make_interval(secs => duration)"
        " WHERE channel = $1 AND ended_at IS NULL AND id <> $2", channel, row["id"])
    meta = row["metadata"]
    if isinstance(meta, str):
        meta = json.loads(meta)
    meta = meta if isinstance(meta, dict) else {}
    uid = meta.get("uid")
    played = float(meta.get("played") or 0)
    credited_raw = meta.get("credited")
    credited = float(credited_raw if credited_raw is not None else played)
    play = Play(channel=channel, media_id=row["media_id"], media_type=row["media_type"],
                title=row["title"], duration=int(row["duration"] or 0),
                uid=uid if isinstance(uid, int) else None, started_at=row["started"],
                queued_by=row["queued_by"] or "", play_id=row["id"],
                position=float(meta.get("position") or 0),
                at=row["ended"] if row["ended"] is not None else row["started"],
                played=played, credited=credited, open=row["ended"] is None)
    return play


async def top_media(conn, channel: str, limit: int = 5):
    return await conn.fetch(
        f"SELECT title, media_type, media_id, play_count, total_duration FROM {ST}"
        " WHERE channel = $1 AND coalesce(play_count, 0) > 0"
        " ORDER BY play_count DESC, last_played DESC NULLS LAST LIMIT $2", channel, limit)

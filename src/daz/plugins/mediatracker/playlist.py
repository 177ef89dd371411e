"""The mirror of a channel's playlist in ``daz_mediatracker_queue``, and the media library.

The connection already keeps the playlist in ``RoomState`` (by uid, applying ``playlist``,
``queue``, ``delete`` and ``moveVideo`` in order), so the mirror does not re-interpret events: each
playlist event makes the table match ``room.state`` as it is when the handler runs. Rows are
identified by uid; ``position`` is only the row's index in the current order.

* First sync of a room in this process, or a change touching most rows (a new playlist, a
  shuffle): the channel's rows are replaced in one transaction (DELETE + COPY), so a 4,000-item
  playlist is one round of writes, not 4,000.
* Otherwise only the difference is written: deleted uids removed, new uids inserted, moved rows
  renumbered. ``UNIQUE (channel, position)`` is checked row by row (it is not deferrable, so
  in-place ``position ± 1`` shifts break on it), so renumbering goes through negative positions
  first: no two rows ever hold the same position in between.
* Every media item seen is added to ``daz_mediatracker_library`` once (``play_count`` untouched;
  plays are counted by the play code, not by queueing).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC

from daz.cytube.events import PlaylistItem
from daz.plugins.mediatracker.plays import TITLE_LIMIT, db_seconds, db_text, media_url

Q = "daz_mediatracker_queue"
L = "daz_mediatracker_library"
COLUMNS = ("channel", "position", "uid", "media_id", "media_type", "title", "duration",
           "queued_by", "queued_at")


@dataclass(frozen=True)
class Row:
    position: int
    media_id: str
    media_type: str
    title: str
    duration: int
    queued_by: str


def _row(position: int, item: PlaylistItem) -> Row:
    m = item.media
    return Row(position, db_text(m.id, 255), db_text(m.type, 50), db_text(m.title, TITLE_LIMIT),
               db_seconds(m.seconds), db_text(item.queueby, 255))


def _utc(epoch: float):
    from datetime import datetime

    # The Go schema's queued_at is ``timestamp`` (UTC wall clock); naive UTC fits it, and a
    # ``timestamptz`` column reads it in the session time zone, UTC.
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)


class Mirror:
    """What this process last wrote for one channel (uid → row, uid → queued_at)."""

    def __init__(self, channel: str):
        self.channel = channel
        self.rows: dict[int, Row] | None = None  # None: table contents unknown
        self.queued_at: dict[int, float] = {}

    async def sync(self, conn, items: list[PlaylistItem], now: float | None = None) -> str:
        """Make the table match ``items`` (in order). Returns what was done, for logs/tests."""
        now = time.time() if now is None else now
        want = {item.uid: _row(i, item) for i, item in enumerate(items)}
        if self.rows is not None and self.rows == want:
            return "unchanged"
        for uid in want:
            self.queued_at.setdefault(uid, now)
        changed = 0 if self.rows is None else sum(
            1 for uid, row in want.items() if self.rows.get(uid) != row)
        removed = [] if self.rows is None else [u for u in self.rows if u not in want]
        try:
            how = await self._write(conn, items, want, changed, removed, now)
        except BaseException:
            # Rolled back, or committed with the reply lost: either way what the table holds is
            # unknown now, and a diff against ``rows`` could insert a uid twice. Rewrite next time.
            self.rows = None
            raise
        self.rows = want
        self.queued_at = {uid: self.queued_at[uid] for uid in want}
        return how

    async def _write(self, conn, items, want, changed, removed, now) -> str:
        async with conn.transaction():
            if self.rows is None or changed > max(32, len(want) // 2):
                await self._replace(conn, want)
                how = "replaced"
            else:
                await self._apply(conn, want, removed)
                how = "diff"
            new_media = [items[r.position] for uid, r in want.items()
                         if self.rows is None or uid not in self.rows]
            await add_to_library(conn, self.channel, new_media, now)
        return how

    def _records(self, want: dict[int, Row], uids) -> list[tuple]:
        return [(self.channel, want[u].position, str(u), want[u].media_id, want[u].media_type,
                 want[u].title, want[u].duration, want[u].queued_by, _utc(self.queued_at[u]))
                for u in uids]

    async def _replace(self, conn, want: dict[int, Row]) -> None:
        await conn.execute(f"DELETE FROM {Q} WHERE channel = $1", self.channel)
        if want:
            await conn.copy_records_to_table(Q, records=self._records(want, want),
                                             columns=COLUMNS)

    async def _apply(self, conn, want: dict[int, Row], removed: list[int]) -> None:
        old = self.rows or {}
        if removed:
            await conn.execute(f"DELETE FROM {Q} WHERE channel = $1 AND uid = ANY($2::text[])",
                               self.channel, [str(u) for u in removed])
        moved = [u for u, r in want.items() if u in old and old[u] != r]
        if moved:
            # Park moved rows at distinct negative positions, then flip them to their final
            # ones: no position is ever held twice, whatever order the rows are checked in.
            await conn.execute(
                f"UPDATE {Q} q SET position = -1 - m.pos, media_id = m.mid, media_type = m.mty,"
                " title = m.title, duration = m.dur, queued_by = m.qby"
                " FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], $6::text[],"
                "   $7::int[], $8::text[]) AS m(uid, pos, mid, mty, title, dur, qby)"
                " WHERE q.channel = $1 AND q.uid = m.uid", self.channel,
                [str(u) for u in moved], [want[u].position for u in moved],
                [want[u].media_id for u in moved], [want[u].media_type for u in moved],
                [want[u].title for u in moved], [want[u].duration for u in moved],
                [want[u].queued_by for u in moved])
            await conn.execute(f"UPDATE {Q} SET position = -1 - position"
                               " WHERE channel = $1 AND position < 0", self.channel)
        added = [u for u in want if u not in old]
        if added:
            await conn.executemany(
                f"INSERT INTO {Q} ({', '.join(COLUMNS)}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
                self._records(want, added))


async def add_to_library(conn, channel: str, items: list[PlaylistItem], now: float) -> None:
    """Every media seen goes into the library once (first channel and queuer kept)."""
    seen: dict[str, tuple[str, str, str, int, str]] = {}
    for item in items:
        m = item.media
        mid, mtype = db_text(m.id, 255), db_text(m.type, 50)
        if mid and mtype:  # a playlist may hold an item twice: the first one is kept
            seen.setdefault(media_url(mtype, mid), (mid, mtype, db_text(m.title, TITLE_LIMIT),
                                                    db_seconds(m.seconds),
                                                    db_text(item.queueby, 100)))
    if not seen:
        return
    urls = list(seen)
    rows = [seen[u] for u in urls]
    await conn.execute(
        f"INSERT INTO {L} (url, media_id, media_type, title, duration, first_seen, play_count,"
        "   added_by, channel)"
        " SELECT u.url, u.mid, u.mty, u.title, u.dur, to_timestamp($7), 0, u.qby, $8"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[])"
        "   AS u(url, mid, mty, title, dur, qby)"
        " ON CONFLICT DO NOTHING", urls,
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
        [r[4] for r in rows], now, db_text(channel, 100))

"""The rows a migration changes in a database the Go bot (or an older daz) wrote.

Most of the migration only adds: columns, indexes, functions. A few statements change rows,
because the keys daz relies on cannot be built while the Go bot's duplicates are there. Each is
listed here with a query that counts exactly the rows its statement touches, so that
``daz db migrate --dry-run`` can say what *would* change, and ``migrate`` what it *did* (the
count is taken in the file's own transaction, just before the statement runs).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from daz.db.pool import table_exists


@dataclass(frozen=True)
class RowChange:
    migration: str
    table: str
    verb: str  # close, delete, merge, update
    what: str
    count_sql: str
    needs_columns: tuple[str, ...] = ()
    sql_without_columns: str = ""  # when a needed column is missing (a Go-era table)


@dataclass(frozen=True)
class CountedChange:
    change: RowChange
    rows: int

    def describe(self, done: bool) -> str:
        verb = {"close": "closed", "delete": "deleted", "merge": "merged",
                "update": "updated"}[self.change.verb] if done else self.change.verb
        return f"{self.change.table}: {verb} {self.rows} {self.change.what}"


def _surplus(table: str, key: str, where: str = "true") -> str:
    """Rows beyond the first of each group: what a keep-one-per-key statement touches."""
    return (f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {table}"
            f" WHERE {where} GROUP BY {key}) g")


CHANGES = (
    RowChange("usertracker/001_baseline.sql", "daz_user_tracker_sessions", "close",
              "duplicate active session(s); the newest per channel and user stays open, the"
              " others end at their last activity",
              _surplus("daz_user_tracker_sessions", "channel, lower(username)", "is_active")),
    RowChange("mediatracker/001_baseline.sql", "daz_mediatracker_plays", "close",
              "open play(s) beyond the newest of each channel; they end at their nominal"
              " length", _surplus("daz_mediatracker_plays", "channel", "ended_at IS NULL")),
    RowChange("mediatracker/001_baseline.sql", "daz_mediatracker_queue", "delete",
              "duplicate playlist uid(s) in the playlist mirror (older copies; the mirror is"
              " rewritten from the room on the next sync)",
              _surplus("daz_mediatracker_queue", "channel, uid", "uid IS NOT NULL"),
              needs_columns=("uid",), sql_without_columns="SELECT 0"),
    RowChange("core/030_fix_gallery_duplicates.sql", "daz_gallery_images", "merge",
              "image row(s) that repeat one user's URL in another channel, into the row"
              " kept (earliest post date and health history kept)",
              _surplus("daz_gallery_images", "username, url")),
    RowChange("core/027_gallery_system.sql", "daz_gallery_images", "update",
              "image row(s) given the new state column (active, pruned or dead) from"
              " is_active and pruned_reason",
              "SELECT count(*) FROM daz_gallery_images WHERE (state = 'active')"
              " IS DISTINCT FROM coalesce(is_active, false) OR is_active IS NULL",
              needs_columns=("state",),
              sql_without_columns="SELECT count(*) FROM daz_gallery_images"),
    RowChange("tell/001_baseline.sql", "daz_tell_messages", "update",
              "delivered message(s) marked as sent (sent_at), so they are never handed out"
              " again",
              "SELECT count(*) FROM daz_tell_messages WHERE delivered AND sent_at IS NULL"
              " AND claimed_by IS NULL",
              needs_columns=("sent_at", "claimed_by"),
              sql_without_columns="SELECT count(*) FROM daz_tell_messages WHERE delivered"),
)


async def _columns(conn, table: str) -> set[str]:
    rows = await conn.fetch("SELECT column_name FROM information_schema.columns"
                            " WHERE table_schema = current_schema() AND table_name = $1", table)
    return {r["column_name"] for r in rows}


async def count(conn, change: RowChange) -> int:
    """How many rows ``change`` touches in this database now (0 when its table is not there)."""
    if not await table_exists(conn, change.table):
        return 0
    sql = change.count_sql
    if change.needs_columns and not set(change.needs_columns) <= await _columns(conn,
                                                                                 change.table):
        sql = change.sql_without_columns
    try:
        async with conn.transaction():  # a savepoint when the caller is in a transaction
            return int(await conn.fetchval(sql) or 0)
    except asyncpg.PostgresError:  # a table shape nobody documented: the migration will tell
        return 0


async def counted(conn, migration_names: Iterable[str]) -> list[CountedChange]:
    """The non-empty row changes of these migrations, in migration order."""
    wanted = list(migration_names)
    out = []
    for name in wanted:
        for change in CHANGES:
            if change.migration == name:
                rows = await count(conn, change)
                if rows:
                    out.append(CountedChange(change, rows))
    return out

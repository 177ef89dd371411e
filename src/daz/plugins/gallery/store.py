"""The gallery's database access: the SQL functions of scripts 027–030 plus the reads.

State lives in ``daz_gallery_images.state`` (active, pruned, dead); ``is_active`` and
``pruned_reason`` are kept in step by the scripts' trigger so a Go-era reader still works.
Locks are per (user, channel): a locked gallery is not collected, not shown and not checked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOCKED = """EXISTS (SELECT 1 FROM daz_gallery_locks l
                    WHERE l.username = i.username AND l.channel = i.channel AND l.is_locked)"""

# The same schedule as get_images_for_health_check (029), plus: locked galleries are frozen,
# a manual run may re-check active images checked within the hour (never one that is
# backing off after a failure or a 5xx), and dead images are only
# looked at again for ``recovery_days`` after they first failed.
DUE_ACTIVE = f"""
SELECT i.id, i.url, i.username, i.channel, i.state, coalesce(i.failure_count, 0) AS failures
FROM daz_gallery_images i
WHERE i.state = 'active'
  AND ($2 OR i.last_check_at IS NULL OR i.last_check_at < now() - interval '1 hour')
  AND (i.next_check_at IS NULL OR i.next_check_at <= now())
  AND NOT {LOCKED}
ORDER BY i.last_check_at ASC NULLS FIRST, i.id
LIMIT $1"""

DUE_DEAD = f"""
SELECT i.id, i.url, i.username, i.channel, i.state, coalesce(i.failure_count, 0) AS failures
FROM daz_gallery_images i
WHERE i.state = 'dead'
  AND (i.next_check_at IS NULL OR i.next_check_at <= now())
  AND coalesce(i.first_failure_at, i.last_check_at, i.posted_at)
      > now() - make_interval(days => $2)
  AND NOT {LOCKED}
ORDER BY coalesce(i.next_check_at, i.last_check_at, i.posted_at), i.id
LIMIT $1"""

IMAGE_COLUMNS = """i.id, i.username, i.url, i.channel, i.posted_at, i.state, i.pruned_reason,
                   i.last_check_at, i.failure_count, i.image_title"""


@dataclass(frozen=True)
class DueImage:
    id: int
    url: str
    username: str
    channel: str
    state: str
    failures: int


class GalleryStore:
    def __init__(self, db: Any):
        self.db = db

    # ------------------------------------------------------------------ collecting

    async def add_image(self, username: str, url: str, channel: str, max_images: int) -> int:
        return await self.db.fetchval("SELECT add_gallery_image($1, $2, $3, NULL, $4)",
                                      username, url, channel, max_images)

    async def is_locked(self, username: str, channel: str) -> bool:
        return bool(await self.db.fetchval(
            "SELECT is_locked FROM daz_gallery_locks WHERE username = $1 AND channel = $2",
            username, channel))

    async def set_locked(self, username: str, channel: str, locked: bool) -> None:
        await self.db.execute(
            """INSERT INTO daz_gallery_locks AS l (username, channel, is_locked, locked_at,
                                                 locked_by, updated_at)
               VALUES ($1::varchar, $2::varchar, $3::boolean, CASE WHEN $3 THEN now() END,
                       CASE WHEN $3 THEN $1::varchar END, now())
               ON CONFLICT (username, channel) DO UPDATE
               SET is_locked = $3,
                   locked_at = CASE WHEN $3 THEN now() ELSE l.locked_at END,
                   locked_by = CASE WHEN $3 THEN $1::varchar ELSE l.locked_by END,
                   updated_at = now()""", username, channel, locked)

    async def counts(self, username: str, channel: str) -> tuple[int, int]:
        """(active images everywhere, active images in this channel) of one user."""
        row = await self.db.fetchrow(
            """SELECT count(*) AS everywhere, count(*) FILTER (WHERE channel = $2) AS here
               FROM daz_gallery_images WHERE username = $1 AND state = 'active'""",
            username, channel)
        return int(row["everywhere"]), int(row["here"])

    # ------------------------------------------------------------------ health

    async def due(self, active_limit: int, dead_limit: int, *, force: bool = False,
                  recovery_days: int = 30) -> list[DueImage]:
        rows = list(await self.db.fetch(DUE_ACTIVE, active_limit, force))
        rows += await self.db.fetch(DUE_DEAD, dead_limit, recovery_days)
        return [DueImage(r["id"], r["url"], r["username"], r["channel"], r["state"],
                         r["failures"]) for r in rows]

    # ``status`` is the HTTP status of the answer (None: nothing answered) and ``response_ms``
    # the time the requests took (None: none was sent); both go to the health log.

    async def mark_healthy(self, image_id: int, *, status: int | None = None,
                           response_ms: int | None = None) -> None:
        await self.db.execute("SELECT mark_image_for_health_check($1, false, NULL, $2, $3)",
                              image_id, status, response_ms)

    async def mark_failed(self, image_id: int, reason: str, *, status: int | None = None,
                          response_ms: int | None = None) -> str:
        """Count a failure; returns the image's state afterwards."""
        async with self.db.acquire() as conn, conn.transaction():
            await conn.execute("SELECT mark_image_for_health_check($1, true, $2, $3, $4)",
                               image_id, reason[:500], status, response_ms)
            return await conn.fetchval(
                "SELECT state FROM daz_gallery_images WHERE id = $1", image_id) or ""

    async def mark_server_error(self, image_id: int, status: int | None, reason: str, *,
                                response_ms: int | None = None) -> None:
        """A 5xx or a blocked (401/403/429) answer: back off without counting a failure."""
        await self.db.execute("SELECT mark_image_server_error($1, $2, $3, $4)", image_id,
                              status, reason[:500], response_ms)

    async def condemn(self, image_id: int, reason: str) -> None:
        """Dead at once, without a request: for a stored URL that names an internal target."""
        async with self.db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT username, channel, is_active FROM daz_gallery_images"
                " WHERE id = $1 FOR UPDATE", image_id)
            if row is None:
                return
            await conn.execute(
                "UPDATE daz_gallery_images SET state = 'dead', pruned_reason = $2,"
                " failure_count = greatest(coalesce(failure_count, 0), 3),"
                " first_failure_at = coalesce(first_failure_at, now()),"
                " last_check_at = now(), next_check_at = now() + interval '48 hours',"
                " last_status_code = NULL, updated_at = now() WHERE id = $1",
                image_id, reason[:500])
            await conn.execute(
                "INSERT INTO daz_gallery_health_log (image_id, status_code, response_time_ms,"
                " error_message, previous_status, new_status)"
                " VALUES ($1, NULL, NULL, $2, $3, false)", image_id, reason[:500],
                row["is_active"])
            await conn.execute("SELECT daz_gallery_refresh_stats($1, $2)", row["username"],
                               row["channel"])

    async def restore(self, image_id: int, max_images: int, *, status: int | None = None,
                      response_ms: int | None = None) -> bool:
        """Bring a dead image back if the user has room; otherwise look again later."""
        restored = await self.db.fetchval("SELECT restore_dead_image($1, $2)", image_id,
                                          max_images)
        if restored:
            await self.mark_healthy(image_id, status=status, response_ms=response_ms)
        else:
            await self.db.execute("SELECT update_dead_image_recovery($1)", image_id)
        return bool(restored)

    # ------------------------------------------------------------------ pages

    # The channel page reads up to 100 k rows to find page N and to count them: only from the
    # index (it carries the name), with the few locked names passed in rather than looked up
    # row by row, so even the last page costs an index scan, not a walk through the table.
    async def _locked_names(self, channel: str) -> list[str]:
        rows = await self.db.fetch("SELECT username FROM daz_gallery_locks"
                                   " WHERE channel = $1 AND is_locked", channel)
        return [r["username"] for r in rows]

    async def channel_images(self, channel: str, limit: int = 100, offset: int = 0,
                             locked: list[str] | None = None) -> list:
        if locked is None:
            locked = await self._locked_names(channel)
        return await self.db.fetch(
            f"""SELECT {IMAGE_COLUMNS} FROM daz_gallery_images i WHERE i.id = ANY(ARRAY(
                    SELECT id FROM daz_gallery_images
                    WHERE channel = $1 AND state = 'active' AND NOT (username = ANY($4::text[]))
                    ORDER BY posted_at DESC, id DESC LIMIT $2 OFFSET $3))
                ORDER BY i.posted_at DESC, i.id DESC""", channel, limit, offset, locked)

    async def count_channel_images(self, channel: str, locked: list[str] | None = None) -> int:
        if locked is None:
            locked = await self._locked_names(channel)
        return int(await self.db.fetchval(
            """SELECT count(*) FROM daz_gallery_images
               WHERE channel = $1 AND state = 'active' AND NOT (username = ANY($2::text[]))""",
            channel, locked) or 0)

    async def user_images(self, channel: str, username: str, limit: int = 100,
                          offset: int = 0) -> list:
        return await self.db.fetch(
            f"""SELECT {IMAGE_COLUMNS} FROM daz_gallery_images i
                WHERE i.channel = $1 AND lower(i.username) = lower($2) AND i.state = 'active'
                  AND NOT {LOCKED}
                ORDER BY i.posted_at DESC, i.id DESC LIMIT $3 OFFSET $4""",
            channel, username, limit, offset)

    async def count_user_images(self, channel: str, username: str) -> int:
        return int(await self.db.fetchval(
            f"""SELECT count(*) FROM daz_gallery_images i
                WHERE i.channel = $1 AND lower(i.username) = lower($2) AND i.state = 'active'
                  AND NOT {LOCKED}""", channel, username) or 0)

    async def graveyard(self, channel: str, username: str | None = None,
                        limit: int = 100) -> list:
        return await self.db.fetch(
            f"""SELECT {IMAGE_COLUMNS} FROM daz_gallery_images i
                WHERE i.channel = $1 AND i.state = 'dead'
                  AND ($2::text IS NULL OR lower(i.username) = lower($2)) AND NOT {LOCKED}
                ORDER BY coalesce(i.last_check_at, i.posted_at) DESC, i.id DESC LIMIT $3""",
            channel, username, limit)

    async def user_locked_anywhere_named(self, channel: str, username: str) -> bool:
        return bool(await self.db.fetchval(
            """SELECT bool_or(is_locked) FROM daz_gallery_locks
               WHERE channel = $1 AND lower(username) = lower($2)""", channel, username))

    async def channels(self) -> list[str]:
        rows = await self.db.fetch(
            "SELECT DISTINCT channel FROM daz_gallery_images ORDER BY channel")
        return [r["channel"] for r in rows]

    async def users(self, channel: str) -> list[str]:
        rows = await self.db.fetch(
            f"""SELECT i.username, max(i.posted_at) AS newest FROM daz_gallery_images i
                WHERE i.channel = $1 AND i.state = 'active' AND NOT {LOCKED}
                GROUP BY i.username ORDER BY newest DESC""", channel)
        return [r["username"] for r in rows]

"""The command audit log (``daz_eventfilter_history``), written in batches.

Every command attempt (ran, refused, unknown) becomes a row, but never a synchronous write in
the chat path, so spamming ``!nonsense`` does not turn into database load. Rows are buffered
and written with one COPY per flush; when the database is down they wait (bounded: past
``max_buffer`` the oldest are dropped and counted, an audit log must not grow memory without
limit).

Each chunk is written exactly once: it gets an id when it is taken from the buffer, and that id
goes into ``daz_eventfilter_history_batches`` in the same transaction as the COPY. A chunk whose
commit reply was lost (the connection died after COMMIT) is retried with the same id and found
already written, so no audit row is ever doubled.

A chunk the database refuses for its data (not because it is away) is written again row by
row, each row with an id derived from the chunk's: the good rows go in, each bad row is logged
at error level with the reason and dropped. Retrying the same chunk forever would stall every
later row until the buffer overflowed.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from daz.db.errors import is_transient, schema_missing
from daz.db.text import clean_text

log = logging.getLogger(__name__)

COLUMNS = ("command", "username", "channel", "args", "executed_at", "success", "error_message")
# Control characters would make the log unreadable (and NUL is refused by PostgreSQL).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean(text: str, limit: int) -> str:
    """Storable audit text: control characters dropped, lone surrogates (which UTF-8 cannot
    encode, failing the whole COPY) replaced, at most ``limit`` characters."""
    return clean_text(_CONTROL.sub("", text), limit)


class HistoryWriter:
    def __init__(self, db: Any, *, max_buffer: int = 50_000, batch: int = 1000,
                 naive_timestamps: bool = True) -> None:
        self.db = db
        self.batch = batch
        self.rows: collections.deque = collections.deque(maxlen=max_buffer)
        self.dropped = 0
        self.written = 0
        self.failures = 0
        self.rejected = 0  # rows the database refused for their data; dropped with a log line
        # Rows of a refused chunk, written one at a time: (row id, row), oldest first.
        self.singles: collections.deque[tuple[uuid.UUID, tuple]] = collections.deque()
        # Go created executed_at as `timestamp` (no zone, UTC by our convention); COPY needs the
        # Python value to match the column type.
        self.naive_timestamps = naive_timestamps
        self.inflight: tuple[uuid.UUID, list[tuple]] | None = None  # taken, not yet confirmed
        # Chunks a previous run saved at its stop, each written under its own id first.
        self.saved: collections.deque[tuple[uuid.UUID, list[tuple]]] = collections.deque()
        self.retention_seconds = 7 * 86400  # batch ids are only needed while a retry can come
        self._last_cleanup = 0.0
        self._lock = asyncio.Lock()

    def add(self, command: str, username: str, channel: str, args: list[str] | None,
            success: bool, error: str = "") -> None:
        if len(self.rows) == self.rows.maxlen:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("eventfilter: history buffer full; %d oldest rows dropped",
                            self.dropped)
        now = datetime.now(UTC)
        if self.naive_timestamps:
            now = now.replace(tzinfo=None)
        self.rows.append((
            clean(command, 100), clean(username, 255), clean(channel, 255),
            [clean(a, 500) for a in args[:50]] if success and args is not None else None,
            now, success, clean(error, 500)))

    def __len__(self) -> int:
        return (len(self.rows) + len(self.singles) + sum(len(c) for _, c in self.saved)
                + (len(self.inflight[1]) if self.inflight else 0))

    def take_unsaved(self) -> list[dict]:
        """Everything not written yet, oldest first, as JSON-able chunks (each with the id it
        is written under, so a chunk that did reach COMMIT is not written twice); cleared."""
        chunks = [(row_id, [row]) for row_id, row in self.singles]
        chunks.extend(self.saved)
        if self.inflight is not None:
            chunks.append(self.inflight)
        rows = list(self.rows)
        chunks.extend((uuid.uuid4(), rows[i:i + self.batch])
                      for i in range(0, len(rows), self.batch))
        self.singles.clear()
        self.saved.clear()
        self.inflight = None
        self.rows.clear()
        return [{"id": str(chunk_id), "rows": [_row_to_json(r) for r in chunk]}
                for chunk_id, chunk in chunks]

    def restore(self, chunks: list[dict]) -> None:
        """Take back what ``take_unsaved`` gave a previous run; written before newer rows."""
        for chunk in chunks:
            self.saved.append((uuid.UUID(chunk["id"]),
                               [_row_from_json(r, self.naive_timestamps) for r in chunk["rows"]]))

    async def flush(self) -> int:
        """Write what is buffered; returns rows written. Never raises (rows stay on failure)."""
        if not len(self):
            return 0
        async with self._lock:
            total = await self._write_singles()
            if self.singles:
                return total  # the database is away again; the rest waits its turn
            while True:
                if self.inflight is None:
                    if self.saved:
                        self.inflight = self.saved.popleft()
                    elif not self.rows:
                        break
                    else:
                        chunk = [self.rows.popleft()
                                 for _ in range(min(self.batch, len(self.rows)))]
                        self.inflight = (uuid.uuid4(), chunk)
                batch_id, chunk = self.inflight
                try:
                    async with self.db.acquire() as conn:
                        fresh = await self._write(conn, batch_id, chunk)
                except Exception as exc:
                    self.failures += 1
                    if _keep(exc):  # kept as it is (same id); the next flush tries again
                        log.warning("eventfilter: could not write %d history rows (%s);"
                                    " will retry", len(chunk), exc)
                        break
                    log.error("eventfilter: the database refused a batch of %d history rows"
                              " (%s); writing them one by one to keep the good ones",
                              len(chunk), _short(exc))
                    self.singles.extend((uuid.uuid5(batch_id, str(i)), row)
                                        for i, row in enumerate(chunk))
                    self.inflight = None
                    total += await self._write_singles()
                    if self.singles:
                        break
                    continue
                self.inflight = None
                if fresh:
                    total += len(chunk)
                    self.written += len(chunk)
                else:
                    log.info("eventfilter: history batch %s was already written; skipped",
                             batch_id)
            return total

    async def _write_singles(self) -> int:
        """Write the rows of a refused chunk one by one; bad rows are logged and dropped.
        Stops (keeping the rest) when the database is away."""
        total = 0
        while self.singles:
            row_id, row = self.singles[0]
            try:
                async with self.db.acquire() as conn:
                    fresh = await self._write(conn, row_id, [row])
            except Exception as exc:
                self.failures += 1
                if _keep(exc):
                    log.warning("eventfilter: could not write a history row (%s); will retry",
                                exc)
                    return total
                self.rejected += 1
                log.error("eventfilter: dropped a history row the database refuses (%s):"
                          " command=%r user=%r", _short(exc), row[0][:100], row[1][:100])
            else:
                if fresh:
                    total += 1
                    self.written += 1
            self.singles.popleft()
        return total

    async def _write(self, conn, batch_id: uuid.UUID, chunk: list[tuple]) -> bool:
        async with conn.transaction():
            fresh = await conn.fetchval(
                "INSERT INTO daz_eventfilter_history_batches (batch_id) VALUES ($1)"
                " ON CONFLICT DO NOTHING RETURNING batch_id", batch_id)
            if fresh is None:
                return False
            await conn.copy_records_to_table("daz_eventfilter_history", records=chunk,
                                             columns=COLUMNS)
            if time.monotonic() - self._last_cleanup > 3600:
                self._last_cleanup = time.monotonic()
                await conn.execute(
                    "DELETE FROM daz_eventfilter_history_batches"
                    " WHERE written_at < now() - make_interval(secs => $1)",
                    float(self.retention_seconds))
        return True


def _row_to_json(row: tuple) -> list:
    command, username, channel, args, executed_at, success, error = row
    return [command, username, channel, args, executed_at.isoformat(), success, error]


def _row_from_json(item: list, naive: bool) -> tuple:
    command, username, channel, args, executed_at, success, error = item
    when = datetime.fromisoformat(executed_at)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if naive:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return (str(command), str(username), str(channel),
            [str(a) for a in args] if args is not None else None, when, bool(success),
            str(error))


def _keep(exc: BaseException) -> bool:
    """Will the same rows be accepted later (database away, schema not there yet)?"""
    return is_transient(exc) or schema_missing(exc)


def _short(exc: BaseException, width: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= width else text[: width - 3] + "..."

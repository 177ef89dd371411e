"""The command audit log (``daz_eventfilter_history``), written in batches.

Every command attempt (ran, refused, unknown) becomes a row, but never a synchronous write in
the chat path: the Go bot did one blocking INSERT per refused or unknown command, so spamming
``!nonsense`` turned into database load. Rows are buffered and written with one COPY per flush;
when the database is down they wait (bounded: past ``max_buffer`` the oldest are dropped and
counted, an audit log must not grow memory without limit).
"""
from __future__ import annotations

import asyncio
import collections
import logging
import re
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger(__name__)

COLUMNS = ("command", "username", "channel", "args", "executed_at", "success", "error_message")
# Control characters would make the log unreadable (and NUL is refused by PostgreSQL).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean(text: str, limit: int) -> str:
    return _CONTROL.sub("", text)[:limit]


class HistoryWriter:
    def __init__(self, db: Any, *, max_buffer: int = 50_000, batch: int = 1000,
                 naive_timestamps: bool = True) -> None:
        self.db = db
        self.batch = batch
        self.rows: collections.deque = collections.deque(maxlen=max_buffer)
        self.dropped = 0
        self.written = 0
        self.failures = 0
        # Go created executed_at as `timestamp` (no zone, UTC by our convention); COPY needs the
        # Python value to match the column type.
        self.naive_timestamps = naive_timestamps
        self._lock = asyncio.Lock()

    def add(self, command: str, username: str, channel: str, args: list[str] | None,
            success: bool, error: str = "") -> None:
        if len(self.rows) == self.rows.maxlen:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("eventfilter: history buffer full; %d oldest rows dropped", self.dropped)
        now = datetime.now(timezone.utc)
        if self.naive_timestamps:
            now = now.replace(tzinfo=None)
        self.rows.append((
            clean(command, 100), clean(username, 255), clean(channel, 255),
            [clean(a, 500) for a in args[:50]] if success and args is not None else None,
            now, success, clean(error, 500)))

    def __len__(self) -> int:
        return len(self.rows)

    async def flush(self) -> int:
        """Write what is buffered; returns rows written. Never raises (rows stay on failure)."""
        if self.db is None or not self.rows:
            return 0
        async with self._lock:
            total = 0
            while self.rows:
                chunk = [self.rows.popleft() for _ in range(min(self.batch, len(self.rows)))]
                try:
                    async with self.db.pool.acquire() as conn:
                        await conn.copy_records_to_table("daz_eventfilter_history",
                                                         records=chunk, columns=COLUMNS)
                except Exception as exc:
                    # Put them back in front, in order; the next flush tries again.
                    self.rows.extendleft(reversed(chunk))
                    self.failures += 1
                    log.warning("eventfilter: could not write %d history rows (%s); will retry",
                                len(chunk), exc)
                    break
                total += len(chunk)
                self.written += len(chunk)
            return total

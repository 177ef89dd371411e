"""The batched event log writer: nothing accepted is lost, nothing is written twice.

``put()`` never waits on the database. Entries go to a bounded in-memory queue that one writer
task drains in batches (at ``batch_size`` entries, or ``flush_interval`` after the oldest one
arrived). Each batch is one transaction, written one of two ways (see ``eventrows``): COPY
straight into its tables, or COPY into a staging table and one ``INSERT … SELECT … ON CONFLICT
DO NOTHING`` per target table, so replayed chat and retried batches deduplicate.

A batch of fresh events (from memory, never attempted before) is copied straight into its
tables; one that might hold something already stored (a retry, the journal, or a direct copy
that met a duplicate) goes through the staging table, which skips duplicates. After a direct
copy met a duplicate, batches go staged for ``direct_pause`` seconds (a second daz logging the
same channel would otherwise cost a refused copy per batch).

When a batch is refused because of its data, it is written again row by row: the good rows go
in, each bad row gets a log line saying why and is appended to ``eventlog.journal.rejected``
(JSON lines, beside the event log's journal stream)
so it can be inspected or fixed by hand. One bad row never costs its neighbours.

When the database is gone (a write fails, or takes longer than ``write_timeout``), entries
wait in memory; once ``max_queue`` entries wait, new entries spill to the event log's stream of
the journal (``daz/journal.py``, called the spill file here) instead, and keep going there until
the file has been replayed, so the order is always:
memory first (older), then the file. While the database
is writing (a burst outruns it, which is not an outage), up to ``burst_queue`` entries may wait
in memory instead, and a caller of ``admit()`` waits when that many do (back-pressure: the sql
plugin's bus lane fills and the room reads its socket no faster than the database takes the
events). Spilling and replaying costs more CPU than the writes it stands in for, so spilling
under load would only slow the writer further. When the database then goes away, what waits
beyond ``max_queue`` moves to the head of the spill file, so a crash during an outage loses no
more than it would have without the burst allowance, and ``admit()`` stops waiting.

Shutdown writes what it can within ``shutdown_timeout`` and puts the rest at the head of the
spill file; the next start replays the file before anything newer. When the database does not
answer at stop (or the stop runs out of time), ``save_to_spill()`` does that at once, without
another attempt.

When the spill file cannot be written (a full disk, or the journal at its bound), its lines wait
in memory and, once the
database answers, are written to it directly after what the file already holds: the disk is
never retried in the database's place. While neither takes them, ``status()["at_risk"]`` says
how many events exist only in memory (and /health says so); a failed write leaves no partial line
and no temp file behind.

Stages (``daz_eventlog_events_total{stage}`` and ``status()``; ``daz_eventlog_queue_depth`` is
what waits): queued (accepted by ``put``), written
(from memory to the database, duplicates included), spilled (to the file), replayed (from the
file to the database), failed (rejected rows). queued = written + replayed + failed + waiting.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from types import SimpleNamespace
from typing import Any

import asyncpg
from prometheus_client import Counter, Gauge

from daz.db import errors
from daz.db.pool import rows_affected
from daz.journal import JournalStream
from daz.metrics import own_series
from daz.plugins.sql import eventrows
from daz.plugins.sql.eventrows import LogEntry
from daz.private_files import open_private

log = logging.getLogger(__name__)

STAGES = ("queued", "written", "spilled", "replayed", "failed")
DIRECT_PAUSE = 60.0  # seconds of staged writes after a direct copy met a duplicate


def eventlog_metrics(metrics: Any) -> SimpleNamespace:
    """The event log's series, on the app's registry (declared here, with the writer)."""
    series: SimpleNamespace = own_series(metrics, "eventlog", lambda registry: SimpleNamespace(
        events=Counter("daz_eventlog_events_total",
                       "Event log rows by stage (queued, written, spilled, replayed, failed)",
                       ["stage"], registry=registry),
        queue=Gauge("daz_eventlog_queue_depth", "Events waiting to be written",
                    registry=registry)))
    return series


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` says the database is unavailable (retry later), not that a row is bad.
    A missing table or column counts too: the schema is not there yet, the rows are fine."""
    return errors.is_transient(exc) or errors.schema_missing(exc)


class EventLog:
    def __init__(self, db: Any, *, journal: JournalStream | None = None, batch_size: int = 64,
                 max_batch: int | None = None, flush_interval: float = 0.2,
                 max_queue: int = 4000, burst_queue: int | None = None,
                 write_timeout: float = 10.0,
                 shutdown_timeout: float = 10.0, retry_max_delay: float = 5.0,
                 direct_pause: float = DIRECT_PAUSE, metrics: Any = None) -> None:
        self.db = db
        self.batch_size = max(1, batch_size)
        self.max_batch = max(self.batch_size, max_batch or self.batch_size * 16)
        self.flush_interval = max(0.0, flush_interval)
        self.max_queue = max(self.max_batch, max_queue)
        self.burst_queue = max(self.max_queue, burst_queue or 0)
        self.write_timeout = write_timeout
        self.shutdown_timeout = shutdown_timeout
        self.retry_max_delay = retry_max_delay
        self.direct_pause = direct_pause
        self.metrics = eventlog_metrics(metrics) if metrics is not None else None
        self.spill = journal  # where entries spill while the database is away
        self.rejected_path = (journal.path.with_name(journal.path.name + ".rejected")
                              if journal is not None else None)
        self.counts = dict.fromkeys(STAGES, 0)
        self._counters: dict[str, Any] = {}
        self.duplicates = 0
        self.db_ok = True
        self.last_error: str | None = None
        self.last_write_at: float | None = None
        self._memory: collections.deque[LogEntry] = collections.deque()
        self._oldest_at = 0.0  # monotonic time the oldest entry in memory arrived
        self._spilling = False  # new entries go to the spill file until it is drained
        self._wake = asyncio.Event()
        self._room = asyncio.Event()  # set when the writer has taken entries out of memory
        self._closing_event = asyncio.Event()
        self._closing = False
        self._closed = False
        self._task: asyncio.Task | None = None
        self._spill_task: asyncio.Task | None = None
        self._unbounded_warned = False
        self._refused = 0  # rows of the current batch rejected as bad (counted as failed)
        self._taken: list[str] = []  # spill lines the current batch took (the disk was full)
        self._staged: set[int] = set()  # server pids whose session has the staging table
        self._delay = 0.0  # current wait between attempts while the database is away
        self._retrying = False  # the head of memory was in an attempt that did not finish
        self._direct_after = 0.0  # monotonic time from which direct copies are tried again
        self.direct_batches = 0
        self.staged_batches = 0
        self.direct_refused = 0  # direct copies rolled back (a duplicate, or refused data)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self.spill is not None:
            left = await asyncio.to_thread(self.spill.open_existing)
            if self.spill.torn_tail is not None:  # never acknowledged: set aside, not replayed
                self._count("failed")
                self._reject_raw(self.spill.torn_tail, "torn: a crash during an append")
            if left:
                self._spilling = True
                log.warning("eventlog: %d event(s) left in %s by an earlier run; replaying them"
                            " before anything newer", left, self.spill.path)
            self._spill_task = asyncio.create_task(self._spill_flusher(), name="eventlog:spill")
        self._task = asyncio.create_task(self._run(), name="eventlog:writer")
        self._gauge()

    async def close(self) -> None:
        """Write everything still waiting; what the database does not take goes to the spill
        file (or, without one, is reported lost with a count)."""
        if self._closed:
            return
        self._closing = True
        self._closing_event.set()
        self._wake.set()
        self._room.set()
        if self._task is not None and not self._task.done():  # a dead writer has no flush
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.shutdown_timeout)
            except (TimeoutError, Exception):
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        if self._spill_task is not None:
            self._spill_task.cancel()
            await asyncio.gather(self._spill_task, return_exceptions=True)
        await self._save_leftovers()
        self._closed = True
        self._gauge()

    async def save_to_spill(self) -> None:
        """Stop writing and put everything in memory at the head of the spill file, now; from
        here on new entries go to the file too (daz is stopping and the database does not
        answer, or the stop ran out of time: the next start replays the file)."""
        if self._closed:
            return
        self._closing = True
        self._closing_event.set()
        self._room.set()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._save_leftovers()

    async def _save_leftovers(self) -> None:
        left = list(self._memory)
        if self.spill is None:
            if left:
                log.error("eventlog: %d event(s) could not be written and there is no spill"
                          " file; they are lost", len(left))
            return
        try:
            if left:
                await self.spill.prepend([e.to_json() for e in left])
                self._memory.clear()
                self._count("spilled", len(left))
            await self.spill.flush()
        except OSError as exc:
            log.error("eventlog: could not save %d event(s) to %s (%s) and the database did"
                      " not take them: they are lost", len(self._memory) + self.spill.pending,
                      self.spill.path, exc)
            return
        if self.spill.has_unread:
            log.warning("eventlog: %d event(s) kept in %s for the next start",
                        self.spill.unread, self.spill.path)

    # ------------------------------------------------------------------ accepting

    def put(self, entry: LogEntry) -> None:
        """Accept one entry. Never waits; never drops."""
        self._count("queued")
        if self._spilling or self._closing:
            self._to_spill(entry)
        elif self.spill is not None and len(self._memory) >= (
                self.burst_queue if self.db_ok else self.max_queue):
            self._spilling = True
            log.warning("eventlog: %d events waiting for the database (%s); spilling new ones"
                        " to %s", len(self._memory), self.last_error or "slow", self.spill.path)
            self._to_spill(entry)
        else:
            if not self._memory:
                self._oldest_at = time.monotonic()
                self._wake.set()  # the writer sleeps until there is something: start the clock
            self._memory.append(entry)
            if self.spill is None and len(self._memory) > self.max_queue \
                    and not self._unbounded_warned:
                self._unbounded_warned = True
                log.warning("eventlog: %d events waiting and no spill file configured; holding"
                            " them in memory", len(self._memory))
            if len(self._memory) >= self.batch_size:
                self._wake.set()
        self._gauge()

    async def admit(self, entry: LogEntry) -> None:
        """``put``, but while the database is writing and ``burst_queue`` entries already wait
        in memory, first wait until the writer has taken some (back-pressure, see the module
        docstring). Never waits while the database is away: then the entry spills. Waits at
        most twice ``write_timeout`` (a write that takes longer marks the database away anyway),
        so the caller's bus lane is never held until its handler timeout cancels it."""
        deadline = None
        while (self.db_ok and not self._spilling and not self._closing
               and len(self._memory) >= self.burst_queue):
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + 2 * self.write_timeout
            self._room.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._room.wait()
            except TimeoutError:
                break  # put() spills it: the writer has not moved for too long
        self.put(entry)

    def _to_spill(self, entry: LogEntry) -> None:
        if self.spill is None:
            self._memory.append(entry)
            return
        self.spill.append(entry.to_json())
        self._count("spilled")
        self._wake.set()
        if self._closed:  # after shutdown there is no flusher: write it now-ish
            asyncio.get_running_loop().create_task(self.spill.flush())

    async def _spill_flusher(self) -> None:
        assert self.spill is not None
        while True:
            await asyncio.sleep(self.flush_interval or 0.05)
            if not self.spill.pending:
                continue
            failing = self.spill.write_error is not None
            try:
                await self.spill.flush()
            except OSError as exc:
                if not failing:
                    log.error("eventlog: cannot write %s (%s); %d event(s) held in memory and"
                              " written to the database directly while it answers",
                              self.spill.path, exc, self.spill.pending)
                await asyncio.sleep(1.0)
            else:
                if failing:
                    log.info("eventlog: %s is writable again", self.spill.path)
            self._wake.set()

    # ------------------------------------------------------------------ writing

    async def _run(self) -> None:
        self._delay = 0.0
        while True:
            try:
                if not await self._step():
                    return
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug or a disk error must not stop the writer for good
                log.exception("eventlog: writer error; carrying on in a second")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._closing_event.wait(), 1.0)
                if self._closing:
                    return

    async def _step(self) -> bool:
        """One batch (or one wait); False when the writer is done (closing)."""
        if not self._closing:
            await self._wait_for_work()
        batch, source, offsets = await self._next_batch()
        if not batch:
            more = await self._finish_spilling()
            return not (self._closing and not more)
        done = 0
        try:
            done = await self._write(batch, fresh=source == "memory" and not self._retrying)
        finally:
            if source == "pending":
                assert self.spill is not None
                if done < len(batch):  # also when cancelled mid-write
                    self.spill.give_back(self._taken[done:])
                self._taken = []
        self._retrying = done < len(batch)
        if done:
            self._consume(done, source, offsets)
            self._delay = 0.0
            return True
        if self._closing:
            return False  # the database is away: close() saves the rest to the spill file
        if not self.db_ok:
            await self._shed_to_spill()
        self._delay = min(self.retry_max_delay, max(0.1, self._delay * 2))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._closing_event.wait(), self._delay)
        return True

    async def _shed_to_spill(self) -> None:
        """The database is away: keep at most ``max_queue`` entries in memory and put the
        newest of the rest at the head of the spill file (memory is older than the file)."""
        excess = len(self._memory) - self.max_queue
        if self.spill is None or excess <= 0 or self.spill.write_error is not None:
            return  # (a full disk: the flusher finds out when it can be written again)
        tail = [self._memory.pop() for _ in range(excess)]
        tail.reverse()
        self._spilling = True  # from now on new entries go behind them, into the file
        try:
            await self.spill.prepend([e.to_json() for e in tail])
        except OSError as exc:
            self._memory.extend(tail)  # still older than anything put into the file since
            log.error("eventlog: cannot write %s (%s); %d event(s) stay in memory",
                      self.spill.path, exc, len(self._memory))
            return
        self._count("spilled", excess)
        log.warning("eventlog: database unavailable; %d event(s) moved from memory to %s",
                    excess, self.spill.path)
        self._gauge()

    async def _wait_for_work(self) -> None:
        while not self._closing:
            if len(self._memory) >= self.batch_size:
                return
            if self._spilling and (self._memory or self.spill is None or not self.spill.has_unread):
                return  # memory is older than the file and must go first; or time to leave
            if self.spill is not None and self.spill.has_unread:
                return
            self._wake.clear()
            if self._memory:
                wait = self._oldest_at + self.flush_interval - time.monotonic()
                if wait <= 0:
                    return
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
            else:
                await self._wake.wait()

    async def _next_batch(self) -> tuple[list[LogEntry], str, list[int]]:
        """Memory first (oldest), then the file, then what could not be written to the file
        (a full disk): that goes to the database directly, which may answer."""
        if self._memory:
            n = min(len(self._memory), self.max_batch)
            return [self._memory[i] for i in range(n)], "memory", []
        if self.spill is None:
            return [], "", []
        if not self.spill.has_unread:
            if self.spill.write_error is None or not self.spill.pending:
                return [], "", []
            self._taken = self.spill.take_pending(self.max_batch)
            return [LogEntry.from_json(line) for line in self._taken], "pending", []
        records = await asyncio.to_thread(self.spill.read, self.max_batch)
        entries: list[LogEntry] = []
        offsets: list[int] = []
        for record in records:
            try:
                if record.text is None:
                    raise ValueError("torn or corrupt record (its checksum does not match)")
                entry = LogEntry.from_json(record.text)
            except (ValueError, TypeError, KeyError) as exc:
                if entries:
                    break  # write the good ones first; this record leads the next batch
                self._count("failed")
                log.error("eventlog: unreadable record in %s (%s); set aside in %s",
                          self.spill.path, _short(exc), self.rejected_path)
                self._reject_raw(record.raw.decode("utf-8", errors="replace"),
                                 f"unreadable: {exc}")
                self.spill.consume(record.end, 1)
                return [], "", []
            entries.append(entry)
            offsets.append(record.end)
        return entries, "spill", offsets

    def _consume(self, n: int, source: str, offsets: list[int]) -> None:
        if source == "memory":
            for _ in range(n):
                self._memory.popleft()
            self._room.set()
            self._count("written", n - self._refused)
            if self._memory:
                self._oldest_at = time.monotonic()
        elif source == "spill":
            assert self.spill is not None
            self.spill.consume(offsets[n - 1], n)
            self._count("replayed", n - self._refused)
        else:  # taken from the spill file's unwritten lines; given back if not written
            self._count("replayed", n - self._refused)
        self._gauge()

    async def _finish_spilling(self) -> bool:
        """Leave spill mode once memory and the file are empty; True if there may be more."""
        if self.spill is None or not self._spilling or self._memory:
            return False
        if self.spill.pending:
            if self.spill.write_error is not None:
                return True  # the next batch takes them (the disk is full)
            try:
                await self.spill.flush()
            except OSError:
                pass  # write_error is set: they go to the database from now on
            return True
        if self.spill.has_unread:
            return True
        if await self.spill.reset_if_drained() and not self.spill.pending:
            self._spilling = False
            log.info("eventlog: spill file replayed; writing straight to the database again")
        return False

    async def _write(self, batch: list[LogEntry], *, fresh: bool = False) -> int:
        """Write ``batch``; returns how many entries (from the front) are done: all of them,
        a prefix (the database went away during the row-by-row fallback), or 0. ``fresh``: no
        entry of it was in an earlier attempt, so a direct copy may be tried."""
        self._refused = 0
        try:
            async with asyncio.timeout(self.write_timeout):
                inserted = await self._write_batch(batch, fresh=fresh)
        except Exception as exc:
            if is_transient(exc):
                self._unavailable(exc)
                return 0
            log.warning("eventlog: a batch of %d was refused (%s: %s); writing it row by row",
                        len(batch), type(exc).__name__, _short(exc))
            return await self._write_rows(batch)
        self._available()
        self.duplicates += len(batch) - inserted
        return len(batch)

    async def _write_batch(self, batch: list[LogEntry], *, fresh: bool = False) -> int:
        """One transaction; returns how many entries were new to daz_core_events."""
        if fresh and time.monotonic() >= self._direct_after:
            try:
                return await self._copy_direct(batch)
            except Exception as exc:
                if is_transient(exc):
                    raise  # the database, not the rows: _write keeps the batch for later
                self.direct_refused += 1
                if isinstance(exc, asyncpg.UniqueViolationError):
                    self._direct_after = time.monotonic() + self.direct_pause
                    log.debug("eventlog: a batch of %d holds an event already stored (%s);"
                              " writing it staged", len(batch), _short(exc))
                else:
                    log.info("eventlog: a direct copy of %d was refused (%s: %s); writing it"
                             " staged", len(batch), type(exc).__name__, _short(exc))
        return await self._copy_staged(batch)

    async def _copy_direct(self, batch: list[LogEntry]) -> int:
        rows = eventrows.table_records(batch)
        async with self._acquire() as conn, conn.transaction():
            for table in eventrows.TABLES:  # core first, as staged: ids in arrival order
                if table in rows:
                    await conn.copy_records_to_table(table, records=rows[table],
                                                     columns=eventrows.COLUMNS[table])
        self.direct_batches += 1
        return len(batch)

    async def _copy_staged(self, batch: list[LogEntry]) -> int:
        records, tables = eventrows.stage_records(batch)
        inserted = len(batch)
        async with self._acquire() as conn:
            pid = conn.get_server_pid()
            try:
                async with conn.transaction():
                    if pid not in self._staged:
                        await conn.execute(eventrows.STAGE_DDL)
                    await conn.copy_records_to_table(eventrows.STAGE, records=records,
                                                     columns=eventrows.STAGE_COLUMNS)
                    for table in tables:
                        status = await conn.execute(eventrows.FROM_STAGE[table])
                        if table == eventrows.CORE:
                            inserted = rows_affected(status)
            except BaseException:
                # The staging table may be gone with the failed transaction or session.
                self._staged.discard(pid)
                raise
            self._staged.add(pid)  # temp tables survive the pool's reset on release
        self.staged_batches += 1
        return inserted

    def _acquire(self):
        return self.db.acquire()

    async def _write_rows(self, batch: list[LogEntry]) -> int:
        for done, entry in enumerate(batch):
            refused = False
            core_skipped = False  # daz_core_events already had this event
            for table in eventrows.TABLES:  # core first: the chat_log insert depends on it
                row = eventrows.row_for(table, entry) if table in entry.tables else None
                if row is None:
                    continue
                sql = eventrows.INSERT_SQL[table]
                if table == eventrows.CHAT and core_skipped:
                    sql = eventrows.CHAT_IF_IN_CORE_SQL  # same rule as the batch (eventrows)
                try:
                    async with asyncio.timeout(self.write_timeout):
                        async with self._acquire() as conn:
                            status = await conn.execute(sql, *eventrows.columns_of([row]))
                    if table == eventrows.CORE and rows_affected(status) == 0:
                        core_skipped = True
                        self.duplicates += 1
                except Exception as exc:
                    if is_transient(exc):
                        self._unavailable(exc)
                        return done
                    if not refused:
                        self._refused += 1
                    self._reject(entry, table, exc, count=not refused)
                    refused = True
        self._available()
        return len(batch)

    # ------------------------------------------------------------------ bad rows

    def _reject(self, entry: LogEntry, table: str, exc: BaseException, count: bool = True) -> None:
        if count:
            self._count("failed")
        why = f"{type(exc).__name__}: {_short(exc)}"
        log.error("eventlog: %s not written to %s: %s", entry.describe(), table, why)
        self._reject_raw(entry.to_json(), f"{table}: {why}")

    def _reject_raw(self, line: str, why: str) -> None:
        if self.rejected_path is None:
            return
        record = json.dumps({"rejected_at": time.time(), "why": why, "entry": line},
                            ensure_ascii=True)
        try:
            with open_private(self.rejected_path, "a", encoding="ascii") as f:
                f.write(record + "\n")
        except OSError as exc:
            log.error("eventlog: cannot record the rejected row in %s: %s",
                      self.rejected_path, exc)

    # ------------------------------------------------------------------ health

    def _unavailable(self, exc: BaseException) -> None:
        self._room.set()  # admit() stops waiting: entries spill while the database is away
        self.last_error = f"{type(exc).__name__}: {_short(exc)}"
        if self.db_ok:
            log.warning("eventlog: database unavailable (%s); events wait%s", self.last_error,
                        f", then spill to {self.spill.path}" if self.spill else " in memory")
        self.db_ok = False

    def _available(self) -> None:
        if not self.db_ok:
            log.info("eventlog: database back; %d event(s) waiting", self.waiting)
        self.db_ok = True
        self.last_error = None
        self.last_write_at = time.time()

    @property
    def at_risk(self) -> int:
        """Events held only in memory because neither the database nor the spill file takes
        them (lost if daz stops or dies now)."""
        if self.spill is None:
            return 0 if self.db_ok else len(self._memory)
        if self.spill.write_error is None or self.db_ok:
            return 0
        return len(self._memory) + self.spill.pending + len(self._taken)

    @property
    def waiting(self) -> int:
        spill = self.spill.waiting + len(self._taken) if self.spill is not None else 0
        return len(self._memory) + spill

    def _count(self, stage: str, n: int = 1) -> None:
        self.counts[stage] += n
        if self.metrics is not None:
            counter = self._counters.get(stage)
            if counter is None:  # labels() once per stage, not once per event
                counter = self._counters[stage] = self.metrics.events.labels(stage=stage)
            counter.inc(n)

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.queue.set(self.waiting)

    def status(self) -> dict:
        return {
            "db_ok": self.db_ok,
            "last_error": self.last_error,
            "in_memory": len(self._memory),
            "in_spill_file": self.spill.waiting if self.spill is not None else 0,
            "spilling": self._spilling,
            "spill_file": str(self.spill.path) if self.spill is not None else None,
            "spill_error": self.spill.write_error if self.spill is not None else None,
            "at_risk": self.at_risk,
            "duplicates_skipped": self.duplicates,
            "direct_batches": self.direct_batches,
            "staged_batches": self.staged_batches,
            "direct_refused": self.direct_refused,
            "last_write_at": self.last_write_at,
            **self.counts,
        }

    async def wait_idle(self, timeout: float = 10.0) -> bool:
        """Until nothing waits (tests, benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.waiting:
                return True
            await asyncio.sleep(0.01)
        return False


def _short(exc: BaseException, width: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= width else text[: width - 3] + "..."

"""Index builds that never stop a live bot: ``CREATE INDEX CONCURRENTLY`` outside a transaction.

A schema file may say ``CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS name ON table ...`` or
``DROP INDEX CONCURRENTLY IF EXISTS name``. PostgreSQL refuses those inside a transaction, so
``migrate`` leaves them out of the file's transaction and hands them here. A concurrent build
takes a SHARE UPDATE EXCLUSIVE lock, which lets every insert, update and delete through; the
price is two scans of the table instead of one.

Resumable: each start looks at every such index in the catalog. A valid one is left alone, a
missing one is built, and an INVALID one (a build that was interrupted: the process stopped, the
statement was cancelled, a unique build met a duplicate) is dropped and built again. Nothing is
recorded anywhere else, so there is nothing to get out of step.

The steps of one file run in order, and a file's drops wait while one of its builds is not
done: ``DROP INDEX CONCURRENTLY idx_old`` after ``CREATE ... idx_new`` only runs once the new
index is valid, so a key is never missing. Small tables are built before the bot serves; big
ones (``big_table_bytes``) afterwards, in the background, while the bot runs.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from dataclasses import dataclass, field

import asyncpg

from daz.db.sqlsplit import Statement, split_sql

log = logging.getLogger(__name__)

# Tables below this size are indexed before the bot serves: a few seconds at most.
BIG_TABLE_BYTES = 64 * 1024 * 1024
LOCK_POLL_SECONDS = 0.2
BUILD_TIMEOUT = 6 * 3600.0  # a pool's command timeout would cut a long build short
BUILD_LOCK_KEY = int.from_bytes(hashlib.sha256(b"daz online index builds").digest()[:8], "big",
                                signed=True)

_ONLINE = re.compile(r"^\s*(?:CREATE\s+(?:UNIQUE\s+)?INDEX|DROP\s+INDEX)\s+CONCURRENTLY\b",
                     re.IGNORECASE)
_CREATE = re.compile(r"INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+(\w+)\s+ON\s+(?:ONLY\s+)?(\w+)",
                     re.IGNORECASE)
_DROP = re.compile(r"DROP\s+INDEX\s+CONCURRENTLY\s+IF\s+EXISTS\s+(\w+)\s*$", re.IGNORECASE)


def is_online(statement: Statement) -> bool:
    return bool(_ONLINE.match(_without_comments(statement.text)))


def _without_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines()
                     if not line.lstrip().startswith("--")).strip()


@dataclass(frozen=True)
class OnlineStep:
    source: str  # the migration file it comes from
    statement: Statement
    index: str
    table: str | None  # None for a drop

    @property
    def is_drop(self) -> bool:
        return self.table is None


def steps_in(source: str, text: str) -> list[OnlineStep]:
    """The online statements of a schema file, in order. A statement that could not be resumed
    (no IF [NOT] EXISTS, so a second start would fail on it) is refused with ValueError."""
    out = []
    for statement in split_sql(text):
        if not is_online(statement):
            continue
        body = _without_comments(statement.text)
        created = _CREATE.search(body)
        dropped = _DROP.search(body)
        if created:
            out.append(OnlineStep(source, statement, created.group(1), created.group(2)))
        elif dropped:
            out.append(OnlineStep(source, statement, dropped.group(1), None))
        else:
            raise ValueError(f"{source} line {statement.line}: a CONCURRENTLY statement must say"
                             f" IF NOT EXISTS <name> ON <table> (or DROP ... IF EXISTS <name>)")
    return out


@dataclass
class BuildReport:
    built: list[str] = field(default_factory=list)  # created or dropped
    rebuilt: list[str] = field(default_factory=list)  # an INVALID leftover replaced
    left: list[OnlineStep] = field(default_factory=list)  # not run (big table, or blocked)
    failed: dict[str, str] = field(default_factory=dict)  # index → error
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def pending(self) -> list[str]:
        return [s.index for s in self.left]


async def index_state(conn: asyncpg.Connection, name: str) -> str:
    """"valid", "invalid" (an interrupted or failed concurrent build) or "missing"."""
    valid = await conn.fetchval(
        "SELECT i.indisvalid AND i.indisready FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relname = $1 AND n.nspname = current_schema()", name)
    if valid is None:
        return "missing"
    return "valid" if valid else "invalid"


async def table_bytes(conn: asyncpg.Connection, table: str) -> int | None:
    """The table's size on disk, or None when it is not there (its plugin never ran)."""
    return await conn.fetchval(
        "SELECT pg_relation_size(to_regclass($1)) WHERE to_regclass($1) IS NOT NULL", table)


async def build(conn: asyncpg.Connection, steps: list[OnlineStep], *,
                big_table_bytes: int | None = None, wait_for_lock: bool = True) -> BuildReport:
    """Run the steps that are not done yet. With ``big_table_bytes``, a build on a bigger table
    is left for later (and so are its file's drops). Only one process builds at a time (an
    advisory lock, which a process killed mid-build keeps until its build ends): without
    ``wait_for_lock`` a process that finds another one building leaves everything to it."""
    report = BuildReport()
    if not steps:
        return report
    if not await _take_build_lock(conn, wait_for_lock):
        log.info("database: another process is building indexes; leaving them to it")
        report.left = list(steps)
        return report
    try:
        incomplete: set[str] = set()  # files with a build not done: their drops wait
        for step in steps:
            if step.is_drop and step.source in incomplete:
                report.left.append(step)
                continue
            if not await _run_step(conn, step, big_table_bytes, report):
                incomplete.add(step.source)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", BUILD_LOCK_KEY)
    return report


async def _take_build_lock(conn: asyncpg.Connection, wait: bool) -> bool:
    # Polled, never waited for inside a statement: a concurrent build waits for every open
    # transaction in the database to end, and one blocked on this lock would never end.
    while True:
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", BUILD_LOCK_KEY):
            return True
        if not wait:
            return False
        await asyncio.sleep(LOCK_POLL_SECONDS)


async def _run_step(conn: asyncpg.Connection, step: OnlineStep, big_table_bytes: int | None,
                    report: BuildReport) -> bool:
    """False when the step did not run (left for later, or failed): its file waits."""
    state = await index_state(conn, step.index)
    if step.is_drop:
        if state == "missing":
            return True
    else:
        if state == "valid":
            return True
        size = await table_bytes(conn, step.table or "")
        if size is None:
            return True  # a plugin's table that is not there: nothing to index
        if big_table_bytes is not None and size > big_table_bytes:
            report.left.append(step)
            return False
    started = time.monotonic()
    try:
        if state == "invalid" and not step.is_drop:
            log.warning("database: index %s was left INVALID by an interrupted build;"
                        " dropping and building it again", step.index)
            await conn.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{step.index}"',
                               timeout=BUILD_TIMEOUT)
            report.rebuilt.append(step.index)
        log.info("database: %s index %s%s", "dropping" if step.is_drop else "building",
                 step.index, "" if step.is_drop else f" on {step.table} (writers keep going)")
        await conn.execute(step.statement.text, timeout=BUILD_TIMEOUT)
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.error("database: index %s (%s line %d) failed: %s: %s; the next start tries again",
                  step.index, step.source, step.statement.line, type(exc).__name__, exc)
        report.failed[step.index] = f"{type(exc).__name__}: {exc}"
        report.left.append(step)
        return False
    report.seconds[step.index] = time.monotonic() - started
    report.built.append(step.index)
    return True


class BackgroundBuilds:
    """``daz run``'s index builds: the small tables' before the bot serves (``before_serving``),
    the rest in a task while it serves (``start``). Stopping cancels a build in progress; the
    INVALID index it leaves is dropped and built again at the next start."""

    def __init__(self, pool: asyncpg.Pool, steps: list[OnlineStep]):
        self.pool = pool
        self.steps = steps
        self.report = BuildReport()
        self.task: asyncio.Task | None = None
        self.building: str | None = None

    async def before_serving(self) -> None:
        async with self.pool.acquire() as conn:
            self.report = await build(conn, self.steps, big_table_bytes=BIG_TABLE_BYTES,
                                      wait_for_lock=False)
        self.steps = list(self.report.left)

    def start(self) -> None:
        if self.steps:
            log.info("database: building %d index(es) on big tables while the bot serves: %s",
                     len(self.steps), ", ".join(s.index for s in self.steps))
            self.task = asyncio.create_task(self._run(), name="daz-online-indexes")

    async def _run(self) -> None:
        async with self.pool.acquire() as conn:
            self.report = await build(conn, self.steps, wait_for_lock=True)
        self.steps = list(self.report.left)
        if self.report.built:
            log.info("database: online index builds done: %s",
                     ", ".join(f"{name} {self.report.seconds.get(name, 0):.1f} s"
                               for name in self.report.built))

    def status(self) -> dict:
        return {"pending": [s.index for s in self.steps],
                "building": bool(self.task and not self.task.done()),
                "failed": dict(self.report.failed)}

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass

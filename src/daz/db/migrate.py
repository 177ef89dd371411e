"""Bring a database to daz's schema: every owner's numbered migrations, each applied once.

Which files, in which order: ``db/migration_files.py`` (core's, then each plugin's in start
order). Each file is applied in one transaction, statement by statement so that a failure names
the statement, and recorded in ``daz_migrations`` (owner, file, checksum of its text, when).
All of it runs under one advisory lock, so two daz processes starting together take turns
instead of racing on the same DDL.

Applied once: a recorded file is never run again, so a migration after the baseline can rename,
drop or rewrite rows without having to be re-runnable. A recorded file whose text changed since
is an error (``MigrationChanged``, one line naming the file and what to do), raised before
anything runs: a schema change goes in a new numbered file.

Earlier databases:

* one an earlier daz migrated (its record is ``daz_schema_migrations``, one row per re-runnable
  file, left as it is): a baseline recorded there with its present text is recorded here as
  ``recognised``, without running it again (its row-changing steps ran then); one recorded
  with an older text is applied (baselines are re-runnable, and that is what the earlier daz
  would have done);
* one the Go bot made: everything is applied; the baselines adopt its tables, and the rows they
  change are counted and reported (``db/adoption.py``).

Someone re-running the Go scripts with ``psql -f`` puts Go's function bodies back
(``db/functions.py`` finds them); ``migrate`` restores them by running again only the
statements that define those functions in the file that defines them, not the file.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from daz.db import adoption, functions, online
from daz.db.migration_files import (
    CORE_DIR,
    PLUGINS_DIR,
    Migration,
    MigrationFileError,
    all_migrations,
)
from daz.db.pool import table_exists
from daz.db.sqlsplit import Statement, split_sql
from daz.preflight import OperatorError

__all__ = ["CORE_DIR", "PLUGINS_DIR", "Migration", "MigrationChanged", "MigrationError",
           "MigrationFileError", "migrate", "migrations", "plan", "status"]

log = logging.getLogger(__name__)

CLEANUP_SCRIPT = "cleanup-stale-sessions.sql"
# Any fixed 64-bit number works; derived from a name so it is unlikely to collide with others.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"daz schema migrations").digest()[:8], "big",
                          signed=True)
STATEMENT_TIMEOUT = 3600.0  # an index on a big Go-era table may take a while
LOCK_TIMEOUT_MS = 1000  # the longest a migration statement may make writers queue behind it
LOCK_ATTEMPTS = 60  # about 5 minutes of retries, then the migration fails naming the statement

TABLE = "daz_migrations"
TABLE_DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    owner      text NOT NULL,
    file       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    recognised boolean NOT NULL DEFAULT false,
    PRIMARY KEY (owner, file)
)"""
COMMENT = (f"COMMENT ON COLUMN {TABLE}.recognised IS 'applied by a daz before numbered"
           " migrations (daz_schema_migrations): recorded, not run again'")
LEGACY_TABLE = "daz_schema_migrations"  # an earlier daz's record, read and never written


class MigrationError(RuntimeError):
    """A migration file failed; nothing of that file was applied."""

    def __init__(self, name: str, statement: Statement | None, cause: BaseException) -> None:
        self.name = name
        self.statement = statement
        self.cause = cause
        where = (f" at line {statement.line}, statement: {statement.summary()}"
                 if statement else "")
        super().__init__(f"migration {name} failed{where}: {type(cause).__name__}: {cause}")


class MigrationChanged(OperatorError):
    """Applied migrations whose files no longer have the text that was applied."""

    def __init__(self, changed: list[Migration]) -> None:
        self.changed = changed
        names = ", ".join(f"{m.name} ({m.path})" for m in changed)
        first = changed[0]
        super().__init__(
            f"migration {names} changed after it was applied to this database, and an applied"
            f" migration is never run again: restore the applied text (e.g. git checkout"
            f" {first.path.name}) and put the change in a new file with the next number in"
            f" {first.path.parent}")


@dataclass(frozen=True)
class MigrationStatus:
    name: str
    path: Path | None  # None: recorded in the database, but no such file here
    checksum: str | None
    applied_checksum: str | None
    applied_at: datetime | None
    earlier: bool = False  # not recorded yet, but an earlier daz applied this very text
    recognised: bool = False  # recorded from an earlier daz's record, not run

    @property
    def state(self) -> str:
        if self.applied_checksum is None:
            return "earlier" if self.earlier else "pending"
        if self.path is None:
            return "unknown"
        if self.checksum != self.applied_checksum:
            return "changed"
        return "recognised" if self.recognised else "applied"


def migrations() -> list[Migration]:
    return all_migrations()


@contextlib.asynccontextmanager
async def _connection(target: Any) -> AsyncIterator[asyncpg.Connection]:
    """A connection from a Connection, a Pool, or a ``Database`` (its ``pool``)."""
    pool = getattr(target, "pool", None)
    if pool is not None and not isinstance(target, asyncpg.Connection):
        target = pool
    if isinstance(target, asyncpg.Pool):
        async with target.acquire() as conn:
            yield conn
    else:
        yield target


def _forward_notices(conn: asyncpg.Connection, message: Any) -> None:
    level = logging.WARNING if getattr(message, "severity", "") == "WARNING" else logging.DEBUG
    log.log(level, "database: %s", getattr(message, "message", message))


@contextlib.asynccontextmanager
async def _locked(conn: asyncpg.Connection) -> AsyncIterator[None]:
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY, timeout=None)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


async def _recorded(conn: asyncpg.Connection) -> dict[str, asyncpg.Record]:
    if not await table_exists(conn, TABLE):
        return {}
    rows = await conn.fetch(f"SELECT owner || '/' || file AS name, checksum, applied_at,"
                            f" recognised FROM {TABLE}")
    return {r["name"]: r for r in rows}


async def _legacy(conn: asyncpg.Connection) -> dict[str, str]:
    """name → checksum recorded by a daz before numbered migrations (empty when none ran)."""
    if not await table_exists(conn, LEGACY_TABLE):
        return {}
    rows = await conn.fetch(f"SELECT name, checksum FROM {LEGACY_TABLE}")
    return {r["name"]: r["checksum"] for r in rows}


@dataclass
class Survey:
    """Where each migration stands in this database."""
    recorded: dict[str, asyncpg.Record]
    changed: list[Migration] = field(default_factory=list)
    recognisable: list[Migration] = field(default_factory=list)  # an earlier daz applied it
    pending: list[Migration] = field(default_factory=list)  # the rest, to apply
    applied: list[Migration] = field(default_factory=list)  # recorded, text unchanged

    def todo(self, order: list[Migration]) -> list[Migration]:
        waiting = {m.name for m in self.recognisable + self.pending}
        return [m for m in order if m.name in waiting]

    def done(self, order: list[Migration]) -> list[Migration]:
        """Applied, by this daz or an earlier one, in migration order (a later file's function
        definition is the one that counts)."""
        done = {m.name for m in self.applied + self.recognisable}
        return [m for m in order if m.name in done]


async def survey(conn: asyncpg.Connection, todo: list[Migration]) -> Survey:
    found = Survey(await _recorded(conn))
    legacy = await _legacy(conn)
    for m in todo:
        row = found.recorded.get(m.name)
        if row is not None:
            (found.applied if row["checksum"] == m.checksum() else found.changed).append(m)
        elif m.legacy_name in legacy and legacy[m.legacy_name] in m.legacy_checksums():
            found.recognisable.append(m)
        else:
            found.pending.append(m)
    return found


async def run_script(conn: asyncpg.Connection, name: str, text: str) -> list[asyncpg.Record]:
    """Run a script statement by statement in the caller's transaction; returns the rows of the
    last statement. Raises MigrationError naming the statement that failed. CONCURRENTLY
    statements cannot run in a transaction: they are left out (online.build runs them)."""
    return await _run_statements(
        conn, name, [s for s in split_sql(text) if not online.is_online(s)])


async def _run_statements(conn: asyncpg.Connection, name: str,
                          statements: list[Statement]) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = []
    for i, statement in enumerate(statements):
        try:
            if i == len(statements) - 1:
                rows = await conn.fetch(statement.text, timeout=STATEMENT_TIMEOUT)
            else:
                await conn.execute(statement.text, timeout=STATEMENT_TIMEOUT)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise MigrationError(name, statement, exc) from exc
    return rows


async def _apply(conn: asyncpg.Connection, migration: Migration,
                 changes: list[adoption.CountedChange]) -> None:
    # An ALTER TABLE waiting for its lock behind a long read makes every writer queue behind
    # it. So a statement waits at most LOCK_TIMEOUT for a lock; then the file is rolled back,
    # the writers go on, and it is tried again a little later.
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        try:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'")
                counted = await adoption.counted(conn, [migration.name])
                await run_script(conn, migration.name, migration.text())
                await _record(conn, migration, recognised=False)
            break
        except MigrationError as exc:
            if not isinstance(exc.cause, asyncpg.LockNotAvailableError) \
                    or attempt == LOCK_ATTEMPTS:
                raise
            log.warning("database: %s waited over %d ms for a lock (%s); trying again",
                        migration.name, LOCK_TIMEOUT_MS, exc.statement.summary(80)
                        if exc.statement else "")
            await asyncio.sleep(min(5.0, 0.2 * attempt))
    for change in counted:
        log.info("database: %s", change.describe(done=True))
    changes += counted


async def check_unchanged(conn: asyncpg.Connection) -> None:
    """Raise MigrationChanged when a file applied here changed since (``daz run`` checks this
    before it starts anything, so the refusal is its one line)."""
    found = await survey(conn, migrations())
    if found.changed:
        raise MigrationChanged(found.changed)


async def _record(conn: asyncpg.Connection, migration: Migration, *, recognised: bool) -> None:
    await conn.execute(f"INSERT INTO {TABLE} (owner, file, checksum, recognised)"
                       " VALUES ($1, $2, $3, $4)",
                       migration.owner, migration.file, migration.checksum(), recognised)


async def _repair(conn: asyncpg.Connection, migration: Migration, names: set[str]) -> None:
    statements = functions.repair_statements(migration.text(), names)
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS * 10}ms'")
        await _run_statements(conn, migration.name, statements)


def online_steps(files: Iterable[Migration] | None = None) -> list[online.OnlineStep]:
    """Every file's CONCURRENTLY statements (applied files too: a build may have been cut).
    Where several files name one index, the last file's step is the one that stands: a
    later migration dropping an index an earlier one built must not see it built again at
    every start."""
    steps = [step for m in (files if files is not None else migrations())
             for step in online.steps_in(m.name, m.text())]
    last = {step.index: i for i, step in enumerate(steps)}
    return [step for i, step in enumerate(steps) if last[step.index] == i]


async def migrate(conn_or_pool: Any, *, files: Iterable[Migration] | None = None,
                  changes: list[adoption.CountedChange] | None = None,
                  recorded: list[str] | None = None,
                  build_indexes: bool = True) -> list[str]:
    """Apply the migrations not applied yet; returns their names, in order. Raises
    MigrationChanged, before anything runs, when an applied file's text changed since.
    Baselines an earlier daz applied are recorded without running; functions someone replaced
    are restored. ``changes`` receives the rows the files changed, ``recorded`` the names of
    the baselines recorded without running (found under the lock, so another daz migrating at
    the same time cannot make the count wrong). Then, unless
    ``build_indexes`` is off (``daz run`` builds them while it serves), build the online
    indexes that are missing or were left invalid (see online.py)."""
    order = list(files) if files is not None else migrations()
    applied: list[str] = []
    changes = [] if changes is None else changes
    async with _connection(conn_or_pool) as conn:
        conn.add_log_listener(_forward_notices)
        try:
            async with _locked(conn):
                try:
                    if not await table_exists(conn, TABLE):
                        async with conn.transaction():
                            await conn.execute(TABLE_DDL)
                            await conn.execute(COMMENT)
                except asyncpg.PostgresError as exc:  # e.g. no CREATE right on schema public
                    raise MigrationError(TABLE, None, exc) from exc
                found = await survey(conn, order)
                if found.changed:
                    raise MigrationChanged(found.changed)
                recognisable = {m.name for m in found.recognisable}
                if recognisable:  # found.recognisable is in migration order
                    log.info("database: %d migration(s) an earlier daz applied, recorded"
                             " without running them again: %s", len(recognisable),
                             ", ".join(m.name for m in found.recognisable))
                if recorded is not None:
                    recorded.extend(m.name for m in found.recognisable)
                for migration in found.todo(order):
                    if migration.name in recognisable:
                        await _record(conn, migration, recognised=True)
                        continue
                    log.debug("database: applying %s", migration.name)  # the caller lists them
                    await _apply(conn, migration, changes)
                    applied.append(migration.name)
                await _restore_functions(conn, order)
            if build_indexes:
                await build_online_indexes(conn, order)
        finally:
            conn.remove_log_listener(_forward_notices)
    return applied


async def _restore_functions(conn: asyncpg.Connection, order: list[Migration]) -> None:
    """After migrating, when every file of ``order`` is recorded."""
    faults = await functions.drift(conn, order)
    by_file: dict[str, list[functions.FunctionDrift]] = {}
    for fault in faults:
        by_file.setdefault(fault.migration, []).append(fault)
    for migration in order:
        if migration.name in by_file:
            found = by_file[migration.name]
            log.warning("database: restoring functions of %s that someone else changed: %s",
                        migration.name, "; ".join(f.describe() for f in found))
            await _repair(conn, migration, {f.name for f in found})


async def build_online_indexes(conn: asyncpg.Connection,
                               files: Iterable[Migration] | None = None) -> online.BuildReport:
    """Build every online index now (concurrently: writers elsewhere keep going); raises
    MigrationError naming the first one that failed."""
    steps = online_steps(files)
    report = await online.build(conn, steps)
    for step in steps:
        if step.index in report.failed:
            raise MigrationError(step.source, step.statement,
                                 RuntimeError(report.failed[step.index]))
    return report


async def status(conn_or_pool: Any, *,
                 files: Iterable[Migration] | None = None) -> list[MigrationStatus]:
    """Every known file with its state, then rows recorded for files that are not here."""
    todo = list(files) if files is not None else migrations()
    async with _connection(conn_or_pool) as conn:
        found = await survey(conn, todo)
    recorded = dict(found.recorded)
    earlier = {m.name for m in found.recognisable}
    out = []
    for m in todo:
        row = recorded.pop(m.name, None)
        out.append(MigrationStatus(m.name, m.path, m.checksum(),
                                   row["checksum"] if row else None,
                                   row["applied_at"] if row else None,
                                   earlier=m.name in earlier,
                                   recognised=bool(row and row["recognised"])))
    for name, row in sorted(recorded.items()):
        out.append(MigrationStatus(name, None, None, row["checksum"], row["applied_at"]))
    return out


@dataclass(frozen=True)
class Plan:
    """What ``migrate`` would do now."""
    to_apply: list[str]
    to_record: list[str]  # applied by an earlier daz: recorded without running
    changed: list[Migration]  # migrate would refuse to start: MigrationChanged
    changes: list[adoption.CountedChange]  # rows the files to apply would change
    drifted: list[functions.FunctionDrift]  # functions it would restore


async def plan(conn_or_pool: Any, *, files: Iterable[Migration] | None = None) -> Plan:
    """``migrate`` without changing anything (``daz db migrate --dry-run``)."""
    todo = list(files) if files is not None else migrations()
    async with _connection(conn_or_pool) as conn:
        found = await survey(conn, todo)
        names = [m.name for m in found.pending]
        changes = await adoption.counted(conn, names)
        drifted = await functions.drift(conn, found.done(todo))
    return Plan(names, [m.name for m in found.recognisable], found.changed, changes, drifted)


async def function_drift(conn_or_pool: Any) -> list[functions.FunctionDrift]:
    """Functions of applied migrations that are no longer as daz installed them."""
    todo = migrations()
    async with _connection(conn_or_pool) as conn:
        found = await survey(conn, todo)
        return await functions.drift(conn, found.done(todo))


async def ensure_role(conn: asyncpg.Connection, role: str) -> bool:
    """True when ``role`` exists (created NOLOGIN if we may); False, with a warning, if not."""
    if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
        return True
    may = await conn.fetchval(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
    if not may:
        log.warning("database: role %s does not exist and %s may not create roles; grants skipped",
                    role, "this login")
        return False
    quoted = await conn.fetchval("SELECT quote_ident($1)", role)
    try:
        await conn.execute(f"CREATE ROLE {quoted} NOLOGIN")
    except (asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
        pass  # created by someone else meanwhile
    return True


async def grant(conn: Any, role: str = "daz_user") -> None:
    """Give ``role`` read/write on every table and view, sequences and functions in public."""
    async with _connection(conn) as c:
        if not await ensure_role(c, role):
            return
        quoted = await c.fetchval("SELECT quote_ident($1)", role)  # an identifier, never text
        async with c.transaction():
            await c.execute(
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}")
            await c.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}")
            await c.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {quoted}")


def cleanup_script() -> Path:
    return Path(__file__).resolve().parent / CLEANUP_SCRIPT


async def cleanup_sessions(conn: Any) -> int:
    """Close duplicate active usertracker sessions (the newest stays); returns rows closed."""
    path = cleanup_script()
    async with _connection(conn) as c:
        async with c.transaction():
            rows = await run_script(c, path.name, path.read_text(encoding="utf-8"))
    if not rows or "sessions_closed" not in rows[0]:
        raise RuntimeError(f"{path.name} did not report sessions_closed")
    return int(rows[0]["sessions_closed"])

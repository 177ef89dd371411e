"""Bring a database to daz's schema: the Go Daz scripts (fixed) and each plugin's own tables.

Order: the sql plugin's core tables, then ``scripts/sql/0*.sql`` by name, then the other
plugins' schema files in the plugin registry's start order (``plugins/registry.py``: built-in
and installed plugins alike, each after the plugins it declares in ``after``). Every file is applied
in one transaction, statement by statement so that a failure names the statement, and recorded
in ``daz_schema_migrations``. All of it runs under one advisory lock, so two daz processes
starting together take turns instead of racing on the same DDL.

Every file is written to be re-runnable (the Go bot, operators with ``psql -f`` and older daz
versions may all have touched the database), so a file whose text changed since it was recorded
is simply applied again: that is how a fixed function body reaches an existing database. A file
whose functions someone replaced since (the Go scripts run again, ``db/functions.py``) is
applied again too. The rows a file changes (Go-era duplicates it closes, merges or deletes,
``db/adoption.py``) are counted in its transaction and reported.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from daz.db import adoption, functions, online
from daz.db.pool import table_exists
from daz.db.sqlsplit import Statement, split_sql

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PLUGINS_DIR = PACKAGE_DIR / "plugins"
CLEANUP_SCRIPT = "cleanup-stale-sessions.sql"
# Any fixed 64-bit number works; derived from a name so it is unlikely to collide with others.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"daz schema migrations").digest()[:8], "big",
                          signed=True)
STATEMENT_TIMEOUT = 3600.0  # an index on a big Go-era table may take a while
LOCK_TIMEOUT_MS = 1000  # the longest a migration statement may make writers queue behind it
LOCK_ATTEMPTS = 60  # about 5 minutes of retries, then the migration fails naming the statement

TABLE_DDL = """
CREATE TABLE IF NOT EXISTS daz_schema_migrations (
    name       text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


class MigrationError(RuntimeError):
    """A migration file failed; nothing of that file was applied."""

    def __init__(self, name: str, statement: Statement | None, cause: BaseException) -> None:
        self.name = name
        self.statement = statement
        self.cause = cause
        where = (f" at line {statement.line}, statement: {statement.summary()}"
                 if statement else "")
        super().__init__(f"migration {name} failed{where}: {type(cause).__name__}: {cause}")


@dataclass(frozen=True)
class Migration:
    name: str  # stable across a source checkout and an installed wheel
    path: Path

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class MigrationStatus:
    name: str
    path: Path | None  # None: recorded in the database, but no such file here
    checksum: str | None
    applied_checksum: str | None
    applied_at: datetime | None

    @property
    def state(self) -> str:
        if self.applied_checksum is None:
            return "pending"
        if self.path is None:
            return "unknown"
        return "applied" if self.checksum == self.applied_checksum else "changed"


def sql_dir() -> Path:
    """scripts/sql: packaged as daz/sql in a wheel, a symlink to ../../scripts/sql in a checkout."""
    packaged = PACKAGE_DIR / "sql"
    if packaged.is_dir():
        return packaged
    checkout = PACKAGE_DIR.parents[1] / "scripts" / "sql"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"no SQL scripts found in {packaged} or {checkout}")


def migrations() -> list[Migration]:
    out = []
    core = PLUGINS_DIR / "sql" / "schema.sql"
    if core.is_file():
        out.append(Migration("plugins/sql/schema.sql", core))
    out.append(Migration("scaleout/schema.sql", PACKAGE_DIR / "scaleout" / "schema.sql"))
    out += [Migration(f"scripts/sql/{p.name}", p) for p in sorted(sql_dir().glob("0*.sql"))]
    for name, path in plugin_schema_files().items():
        if name != "sql":
            out.append(Migration(f"plugins/{name}/{path.name}", path))
    return out


def plugin_schema_files() -> dict[str, Path]:
    """Each plugin's own schema file, by plugin name, in the registry's start order."""
    from daz.plugins.registry import available_plugins

    out = {}
    for name, cls in available_plugins().items():
        if cls.schema:
            out[name] = Path(inspect.getfile(cls)).resolve().parent / cls.schema
    return out


def migration_files() -> list[Path]:
    return [m.path for m in migrations()]


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
    rows = await conn.fetch("SELECT name, checksum, applied_at FROM daz_schema_migrations")
    return {r["name"]: r for r in rows}


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
                await conn.execute(
                    "INSERT INTO daz_schema_migrations (name, checksum, applied_at)"
                    " VALUES ($1, $2, now()) ON CONFLICT (name) DO UPDATE SET"
                    " checksum = EXCLUDED.checksum, applied_at = EXCLUDED.applied_at",
                    migration.name, migration.checksum())
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


def _current(todo: list[Migration], recorded: dict[str, asyncpg.Record]) -> list[Migration]:
    return [m for m in todo
            if m.name in recorded and recorded[m.name]["checksum"] == m.checksum()]


def online_steps(files: Iterable[Migration] | None = None) -> list[online.OnlineStep]:
    """Every file's CONCURRENTLY statements (applied files too: a build may have been cut)."""
    return [step for m in (files if files is not None else migrations())
            for step in online.steps_in(m.name, m.text())]


async def migrate(conn_or_pool: Any, *, files: Iterable[Migration] | None = None,
                  changes: list[adoption.CountedChange] | None = None,
                  build_indexes: bool = True) -> list[str]:
    """Apply what is not applied yet, changed since, or whose functions were replaced; returns
    the names applied, in order. ``changes`` receives the rows the files changed. Then, unless
    ``build_indexes`` is off (``daz run`` builds them while it serves), build the online
    indexes that are missing or were left invalid (see online.py)."""
    todo = list(files) if files is not None else migrations()
    applied: list[str] = []
    changes = [] if changes is None else changes
    async with _connection(conn_or_pool) as conn:
        conn.add_log_listener(_forward_notices)
        try:
            async with _locked(conn):
                try:
                    await conn.execute(TABLE_DDL)
                except asyncpg.PostgresError as exc:  # e.g. no CREATE right on schema public
                    raise MigrationError("daz_schema_migrations", None, exc) from exc
                recorded = await _recorded(conn)
                repair: dict[str, list[str]] = {}
                for fault in await functions.drift(conn, _current(todo, recorded)):
                    repair.setdefault(fault.migration, []).append(fault.describe())
                for migration in todo:
                    row = recorded.get(migration.name)
                    if row is not None and row["checksum"] == migration.checksum():
                        if migration.name not in repair:
                            continue
                        log.warning("database: re-applying %s, whose functions were changed"
                                    " by someone else: %s", migration.name,
                                    "; ".join(repair[migration.name]))
                    else:
                        # debug: the caller lists what was applied, once
                        log.debug("database: applying %s", migration.name)
                    await _apply(conn, migration, changes)
                    applied.append(migration.name)
            if build_indexes:
                await build_online_indexes(conn, todo)
        finally:
            conn.remove_log_listener(_forward_notices)
    return applied


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


async def status(conn_or_pool: Any) -> list[MigrationStatus]:
    """Every known file with its state, then rows recorded for files that are not here."""
    async with _connection(conn_or_pool) as conn:
        exists = await table_exists(conn, "daz_schema_migrations")
        recorded = await _recorded(conn) if exists else {}
    out = []
    for m in migrations():
        row = recorded.pop(m.name, None)
        out.append(MigrationStatus(m.name, m.path, m.checksum(),
                                   row["checksum"] if row else None,
                                   row["applied_at"] if row else None))
    for name, row in sorted(recorded.items()):
        out.append(MigrationStatus(name, None, None, row["checksum"], row["applied_at"]))
    return out


@dataclass(frozen=True)
class Plan:
    """What ``migrate`` would do now: files to apply, rows they change, functions to restore."""
    to_apply: list[str]
    changes: list[adoption.CountedChange]
    drifted: list[functions.FunctionDrift]


async def plan(conn_or_pool: Any) -> Plan:
    """``migrate`` without changing anything (``daz db migrate --dry-run``)."""
    todo = migrations()
    async with _connection(conn_or_pool) as conn:
        exists = await table_exists(conn, "daz_schema_migrations")
        recorded = await _recorded(conn) if exists else {}
        current = _current(todo, recorded)
        drifted = await functions.drift(conn, current)
        repair = {fault.migration for fault in drifted}
        names = [m.name for m in todo if m not in current or m.name in repair]
        changes = await adoption.counted(conn, names)
    return Plan(names, changes, drifted)


async def function_drift(conn_or_pool: Any) -> list[functions.FunctionDrift]:
    """Functions of applied migrations that are no longer as daz installed them."""
    todo = migrations()
    async with _connection(conn_or_pool) as conn:
        if not await table_exists(conn, "daz_schema_migrations"):
            return []
        return await functions.drift(conn, _current(todo, await _recorded(conn)))


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
    path = sql_dir() / CLEANUP_SCRIPT
    if path.is_file():
        return path
    return PACKAGE_DIR.parents[1] / "scripts" / CLEANUP_SCRIPT


async def cleanup_sessions(conn: Any) -> int:
    """Close duplicate active usertracker sessions (the newest stays); returns rows closed."""
    path = cleanup_script()
    async with _connection(conn) as c, c.transaction():
        rows = await run_script(c, path.name, path.read_text(encoding="utf-8"))
    if not rows or "sessions_closed" not in rows[0]:
        raise RuntimeError(f"{path.name} did not report sessions_closed")
    return int(rows[0]["sessions_closed"])

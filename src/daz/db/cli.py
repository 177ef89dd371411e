"""``daz db``: bring a database to daz's schema and look after it, without running the bot.

Every sub-command finds the database as ``daz run`` does: ``--dsn``, else ``DAZ_DATABASE_URL``,
else the config file's ``core.database`` / ``plugins.sql.database``, else the embedded
PostgreSQL in the data directory (started for the command, and stopped again unless it was
already running, e.g. under a running ``daz run``).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import click

from daz.cli_help import WholeHelpGroup
from daz.config import ConfigError, load_config
from daz.preflight import OperatorError, check_dsn, connect_refusal

log = logging.getLogger(__name__)

_COMMON = [
    click.option("--dsn", help="PostgreSQL URL; default: DAZ_DATABASE_URL, the config, or the"
                               " embedded PostgreSQL."),
    click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                 help="Go Daz style config.json (for its database settings)."),
    click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
                 help="daz's data directory (where the embedded database lives)."),
    click.option("-v", "--verbose", is_flag=True, help="Debug logging."),
]


def _common(fn):
    for option in reversed(_COMMON):
        fn = option(fn)
    return fn


@click.group(cls=WholeHelpGroup)
def db() -> None:
    """Migrate, inspect and maintain daz's PostgreSQL database."""


@contextlib.asynccontextmanager
async def database_url(dsn: str | None, config_path: Path | None,
                       data_dir: Path | None) -> AsyncIterator[tuple[str, float]]:
    """(URL, connect timeout) of the database ``daz run`` would use with these settings; for
    the embedded one, started for the block (and stopped after it unless it was running)."""
    try:
        config = load_config(config_path, overrides={"dsn": dsn, "data_dir": data_dir})
    except ConfigError as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None
    url = config.core.database.url()
    timeout = config.core.database.connect_timeout
    if url:
        yield url, timeout
        return
    from daz.app import default_data_dir
    from daz.db.embedded import EmbeddedPostgres

    where = Path(data_dir or config.core.data_dir or default_data_dir()) / "postgres"
    stop_after = not (where / "postmaster.pid").exists()
    embedded = EmbeddedPostgres(where)
    try:
        url = await embedded.start()
    except OperatorError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        raise click.ClickException(f"no database configured and the embedded PostgreSQL"
                                   f" in {where} did not start: {exc}") from None
    click.echo(f"using the embedded PostgreSQL in {where}", err=True)
    try:
        yield url, timeout
    finally:
        if stop_after:
            await embedded.stop()


@contextlib.asynccontextmanager
async def _connect(dsn: str | None, config_path: Path | None,
                   data_dir: Path | None) -> AsyncIterator:
    import asyncpg

    from daz.db.pool import redact

    async with database_url(dsn, config_path, data_dir) as (url, timeout):
        try:
            check_dsn(url)
            conn = await asyncpg.connect(url, timeout=timeout,
                                         server_settings={"TimeZone": "UTC",
                                                          "application_name": "daz db"})
        except OperatorError as exc:
            raise click.ClickException(str(exc)) from None
        except Exception as exc:
            why = connect_refusal(exc, url) or f"cannot connect to {redact(url)}: {exc}"
            raise click.ClickException(why) from None
        try:
            yield conn
        finally:
            await conn.close()


def _run(coro) -> None:
    try:
        asyncio.run(coro)
    except KeyboardInterrupt:  # pragma: no cover
        raise SystemExit(130) from None


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)-7s %(name)s: %(message)s")


@db.command()
@_common
@click.option("--dry-run", is_flag=True,
              help="Change nothing: list the migrations that would run, the rows they would"
                   " close, merge or delete per table, and the functions they would restore.")
def migrate(dsn, config_path, data_dir, verbose, dry_run) -> None:
    """Apply every migration not applied yet (core's, then each plugin's, each once), and
    restore daz's functions where someone replaced them (e.g. by re-running the Go scripts).
    Prints the rows it changed; docs/upgrading-from-go.md says what else changes for a Go bot."""
    from daz.db import migrate as migrations

    _logging(verbose)

    async def go() -> None:
        async with _connect(dsn, config_path, data_dir) as conn:
            if dry_run:
                _show_plan(await migrations.plan(conn))
                return
            changes: list = []
            earlier: list[str] = []
            try:
                drifted = await migrations.function_drift(conn)
                applied = await migrations.migrate(conn, changes=changes, recorded=earlier)
            except (migrations.MigrationError, OperatorError) as exc:
                raise click.ClickException(str(exc)) from None
            left = await migrations.function_drift(conn)
        if earlier:
            click.echo(f"recorded {len(earlier)} migration(s) an earlier daz applied (not run"
                       " again)")
        if applied:
            click.echo(f"applied {len(applied)} migration(s):")
            for name in applied:
                click.echo(f"  {name}")
        elif not earlier:
            click.echo("database is up to date")
        _show_rows(changes, done=True)
        restored = [fault for fault in drifted if fault not in left]
        if restored:
            click.echo(f"restored {len(restored)} function(s) changed by someone else:")
            for fault in restored:
                click.echo(f"  {fault.describe()} (from {fault.migration})")
        for fault in left:
            click.echo(f"still not as daz defines it: {fault.describe()}", err=True)

    _run(go())


def _show_rows(changes: list, *, done: bool) -> None:
    if not changes:
        click.echo("no rows were changed" if done else "no rows would change")
        return
    click.echo("rows changed:" if done else "rows it would change:")
    for change in changes:
        click.echo(f"  {change.describe(done=done)}")


def _show_plan(plan) -> None:
    if plan.changed:
        click.echo("changed since they were applied (migrate refuses to run until their text"
                   " is restored):")
        for migration in plan.changed:
            click.echo(f"  {migration.name} ({migration.path})")
    if plan.to_apply:
        click.echo(f"would apply {len(plan.to_apply)} migration(s):")
        for name in plan.to_apply:
            click.echo(f"  {name}")
    if plan.to_record:
        click.echo(f"would record {len(plan.to_record)} migration(s) an earlier daz applied"
                   " (not run again):")
        for name in plan.to_record:
            click.echo(f"  {name}")
    if not (plan.to_apply or plan.to_record or plan.changed):
        click.echo("database is up to date")
    _show_rows(plan.changes, done=False)
    if plan.drifted:
        click.echo(f"would restore {len(plan.drifted)} function(s) changed by someone else:")
        for fault in plan.drifted:
            click.echo(f"  {fault.describe()} (from {fault.migration})")
    click.echo("dry run: nothing was changed")


@db.command()
@_common
def status(dsn, config_path, data_dir, verbose) -> None:
    """List every migration with its state: applied; recognised (applied by a daz before
    numbered migrations, recorded without running); earlier (the same, not recorded yet: the
    next migrate records it); pending; changed (file edited since it was applied: migrate
    refuses to run until the applied text is back); repair (applied, but functions it defines
    were replaced since, e.g. by the Go scripts: the next migrate restores them) or unknown
    (recorded, but no such file here)."""
    from daz.db import migrate as migrations

    _logging(verbose)

    async def go() -> None:
        async with _connect(dsn, config_path, data_dir) as conn:
            try:
                rows = await migrations.status(conn)
                drifted = await migrations.function_drift(conn)
            except OperatorError as exc:
                raise click.ClickException(str(exc)) from None
        width = max((len(r.name) for r in rows), default=10)
        repair = {fault.migration for fault in drifted}
        for r in rows:
            when = r.applied_at.strftime("%Y-%m-%d %H:%M:%S UTC") if r.applied_at else ""
            state = "repair" if r.state in ("applied", "recognised") and r.name in repair \
                else r.state
            click.echo(f"{r.name:<{width}}  {state:<10} {when}")
        if drifted:
            click.echo(f"{len(drifted)} function(s) are not as daz installs them (the Go"
                       " scripts run again?); daz db migrate restores them:")
            for fault in drifted:
                click.echo(f"  {fault.describe()} (from {fault.migration})")
        changed = [r.name for r in rows if r.state == "changed"]
        if changed:
            click.echo(f"changed since applied (daz refuses to start): {', '.join(changed)};"
                       " restore their text and put the change in a new numbered file")
        pending = sum(r.state == "pending" for r in rows)
        earlier = sum(r.state == "earlier" for r in rows)
        to_do = [f"{len(changed)} changed" if changed else "",
                 f"{pending} to apply" if pending else "",
                 f"{len(repair)} to repair" if repair else "",
                 f"{earlier} to record" if earlier else ""]
        click.echo(", ".join(part for part in to_do if part) or "up to date")

    _run(go())


@db.command()
@_common
@click.option("--role", default="daz_user", show_default=True,
              help="Role to grant to (created NOLOGIN when it does not exist and we may).")
def grant(dsn, config_path, data_dir, verbose, role) -> None:
    """Give ROLE SELECT, INSERT, UPDATE, DELETE on every table and view, USAGE and SELECT on
    every sequence, and EXECUTE on every function in schema public."""
    from daz.db import migrate as migrations

    _logging(verbose)

    async def go() -> None:
        async with _connect(dsn, config_path, data_dir) as conn:
            if not await migrations.ensure_role(conn, role):
                raise click.ClickException(
                    f"role {role} does not exist and this login may not create it; create it"
                    f" (e.g. CREATE ROLE {role} NOLOGIN) as a superuser, then run grant again")
            await migrations.grant(conn, role)
            counts = await conn.fetchrow(
                "SELECT count(*) AS relations, count(*) FILTER (WHERE"
                "   has_table_privilege($1, c.oid, 'SELECT, INSERT, UPDATE, DELETE')) AS granted"
                " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm', 'p')", role)
        click.echo(f"granted to {role}: read/write on {counts['granted']} of"
                   f" {counts['relations']} tables and views in schema public, their sequences"
                   f" and functions")

    _run(go())


@db.command("cleanup-sessions")
@_common
def cleanup_sessions(dsn, config_path, data_dir, verbose) -> None:
    """Close duplicate active usertracker sessions (scripts/cleanup-stale-sessions.sql): for
    each channel and user only the newest stays open."""
    import asyncpg

    from daz.db import migrate as migrations

    _logging(verbose)

    async def go() -> None:
        async with _connect(dsn, config_path, data_dir) as conn:
            try:
                closed = await migrations.cleanup_sessions(conn)
            except migrations.MigrationError as exc:
                if isinstance(exc.cause, asyncpg.UndefinedTableError):
                    raise click.ClickException("the usertracker tables do not exist yet; run"
                                               " 'daz db migrate' first") from None
                raise click.ClickException(str(exc)) from None
        click.echo(f"closed {closed} duplicate session(s)")

    _run(go())


@db.command()
@_common
@click.option("--dry-run", is_flag=True, help="Count what would go; remove nothing.")
def prune(dsn, config_path, data_dir, verbose, dry_run) -> None:
    """Remove logged rows older than core.retention allows (defaults: mediaUpdate core events
    30 days, gallery health checks 90 days; chat, PMs, sessions and plays forever), in small
    batches that a running bot does not notice. Aggregates are never pruned."""
    from daz.db import retention

    _logging(verbose)
    try:
        settings = load_config(config_path, overrides={"dsn": dsn, "data_dir": data_dir})
    except ConfigError as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None

    async def go() -> None:
        async with _connect(dsn, config_path, data_dir) as conn:
            outcomes = await retention.prune(conn, settings.core.retention, dry_run=dry_run)
        for line in retention.describe(outcomes, dry_run):
            click.echo(line)
        total = sum(o.rows for o in outcomes)
        click.echo(f"{'would remove' if dry_run else 'removed'} {total:,} row(s) in all")

    _run(go())

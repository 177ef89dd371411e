"""Migrations applied once, against a real PostgreSQL: a second run applies nothing, a migration
after the baseline need not be re-runnable, an applied file whose text changed stops
``migrate`` (and ``daz run``) with one line before anything runs, a database an earlier daz
migrated (``daz_schema_migrations``, one row per re-runnable file) has its baselines recognised
instead of run again, and a Go database is adopted as before."""
from __future__ import annotations

import hashlib
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner

from daz.cli import main
from daz.db import migrate as migrations
from daz.db.migrate import Migration, MigrationChanged, migrate
from daz.db.migration_files import EARLIER_TEXTS
from daz.preflight import OperatorError
from tests.conftest import run_sync
from tests.e2e.test_operator_errors_e2e import assert_one_line_refusal, daz, run_args
from tests.integration.test_migrations_db import check_documented_schema, load_go_database

EVERYTHING = [m.name for m in migrations.migrations()]
# What an earlier daz ran on every start (the re-runnable baselines), and the files added since.
BASELINES = [m.name for m in migrations.migrations() if m.legacy_name]
LATER = [name for name in EVERYTHING if name not in BASELINES]
# What daz before numbered migrations created to record the files it ran.
LEGACY_DDL = """
CREATE TABLE daz_schema_migrations (
    name       text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def probe_files(tmp_path: Path) -> list[Migration]:
    texts = {
        "001_baseline.sql": "CREATE TABLE daz_probe (id int);\n",
        # Not re-runnable: a second run of it would fail (the column exists).
        "002_add_note.sql": "ALTER TABLE daz_probe ADD COLUMN note text;\n"
                            "INSERT INTO daz_probe VALUES (1, 'once');\n",
    }
    out = []
    for name, text in texts.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        out.append(Migration("probe", name, tmp_path / name))
    return out


async def recorded(conn) -> dict[str, tuple]:
    rows = await conn.fetch("SELECT owner || '/' || file AS name, checksum, applied_at,"
                            " recognised FROM daz_migrations")
    return {r["name"]: (r["checksum"], r["applied_at"], r["recognised"]) for r in rows}


async def test_a_second_run_applies_nothing_and_later_files_run_once(fresh_dsn, tmp_path):
    files = probe_files(tmp_path)
    conn = await asyncpg.connect(fresh_dsn)
    try:
        assert await migrate(conn, files=files) == ["probe/001_baseline.sql",
                                                    "probe/002_add_note.sql"]
        first = await recorded(conn)
        assert await migrate(conn, files=files) == []
        assert await recorded(conn) == first  # nothing run again, nothing re-recorded
        assert await conn.fetch("SELECT id, note FROM daz_probe") == [(1, "once")]
        # A third file is applied alone.
        third = tmp_path / "003_more.sql"
        third.write_text("UPDATE daz_probe SET note = note || ', then more';\n")
        files.append(Migration("probe", third.name, third))
        assert await migrate(conn, files=files) == ["probe/003_more.sql"]
        assert await conn.fetchval("SELECT note FROM daz_probe") == "once, then more"
        states = {s.name: s.state for s in await migrations.status(conn, files=files)}
        assert set(states.values()) == {"applied"}
    finally:
        await conn.close()


async def test_the_real_migrations_run_once_on_a_fresh_database(fresh_dsn):
    conn = await asyncpg.connect(fresh_dsn)
    try:
        assert await migrate(conn) == EVERYTHING
        first = await recorded(conn)
        assert set(first) == set(EVERYTHING)
        assert not any(recognised for _, _, recognised in first.values())
        assert await migrate(conn) == []
        assert await recorded(conn) == first
        await check_documented_schema(conn)
    finally:
        await conn.close()


async def test_a_changed_file_is_an_error_before_anything_runs(fresh_dsn, tmp_path):
    files = probe_files(tmp_path)
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await migrate(conn, files=files)
        applied_text = files[1].path.read_text()
        files[1].path.write_text(applied_text.replace("note text", "note varchar(10)"))
        pending = tmp_path / "003_pending.sql"
        pending.write_text("CREATE TABLE daz_probe_pending (id int);\n")
        files.append(Migration("probe", pending.name, pending))

        with pytest.raises(MigrationChanged) as failure:
            await migrate(conn, files=files)
        assert isinstance(failure.value, OperatorError)  # daz run prints it as one line
        message = str(failure.value)
        assert "\n" not in message
        assert "probe/002_add_note.sql" in message and str(files[1].path) in message
        assert "never run again" in message and "new file with the next number" in message
        assert await conn.fetchval("SELECT to_regclass('daz_probe_pending')") is None

        plan = await migrations.plan(conn, files=files)
        assert [m.name for m in plan.changed] == ["probe/002_add_note.sql"]
        assert plan.to_apply == ["probe/003_pending.sql"]
        states = {s.name: s.state for s in await migrations.status(conn, files=files)}
        assert states == {"probe/001_baseline.sql": "applied",
                          "probe/002_add_note.sql": "changed", "probe/003_pending.sql": "pending"}

        # The applied text back (the change would go in 004): the pending file runs.
        files[1].path.write_text(applied_text)
        assert await migrate(conn, files=files) == ["probe/003_pending.sql"]
    finally:
        await conn.close()


def cli(*args: str):
    return CliRunner().invoke(main, list(args), env={"DAZ_DATABASE_URL": ""},
                              catch_exceptions=False)


def sql(dsn: str, statement: str, *args):
    async def go():
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(statement, *args)
        finally:
            await conn.close()
    return run_sync(go)


def test_a_changed_file_stops_db_migrate_and_daz_run_with_one_line(migrated_dsn, tmp_path):
    # As if tell's baseline had been edited after it was applied here.
    sql(migrated_dsn, "UPDATE daz_migrations SET checksum = 'edited since'"
                      " WHERE owner = 'tell' AND file = '001_baseline.sql'")
    refused = cli("db", "migrate", "--dsn", migrated_dsn)
    assert refused.exit_code != 0
    assert refused.output.count("\n") == 1, refused.output
    assert "tell/001_baseline.sql" in refused.output and "never run again" in refused.output

    dry = cli("db", "migrate", "--dry-run", "--dsn", migrated_dsn)
    assert dry.exit_code == 0, dry.output
    assert "changed since they were applied" in dry.output and "tell/001_baseline.sql" in dry.output
    status = cli("db", "status", "--dsn", migrated_dsn)
    assert [line.split()[1] for line in status.output.splitlines()
            if line.startswith("tell/001_baseline.sql")] == ["changed"]
    assert status.output.strip().endswith("1 changed")

    line = assert_one_line_refusal(daz(*run_args(migrated_dsn, tmp_path)),
                                   "tell/001_baseline.sql", "never run again")
    assert line.startswith("Error: ")


async def as_an_earlier_daz_left_it(conn) -> None:
    """What daz before numbered migrations did: every re-runnable file (the Go scripts,
    scaleout/schema.sql, each plugin's schema.sql) in its own transaction, recorded under its
    old name with the sha256 of its bytes in daz_schema_migrations, then the online indexes."""
    await conn.execute(LEGACY_DDL)
    for m in migrations.migrations():
        if not m.legacy_name:
            assert m.name in LATER and not m.file.startswith("001_"), m.name
            continue  # added since numbered migrations: an earlier daz never had it
        async with conn.transaction():
            await migrations.run_script(conn, m.legacy_name, m.text())
            await conn.execute("INSERT INTO daz_schema_migrations (name, checksum)"
                               " VALUES ($1, $2)", m.legacy_name,
                               hashlib.sha256(m.path.read_bytes()).hexdigest())
    await migrations.build_online_indexes(conn)


async def test_a_database_an_earlier_daz_migrated_is_recognised_not_run_again(fresh_dsn):
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await as_an_earlier_daz_left_it(conn)
        # A mark only a re-run would undo: an index the sql baseline creates, gone.
        await conn.execute("DROP INDEX idx_chat_channel")
        legacy_before = await conn.fetch("SELECT * FROM daz_schema_migrations ORDER BY name")

        plan = await migrations.plan(conn)
        assert plan.to_apply == LATER and plan.to_record == BASELINES and plan.changed == []
        states = {s.name: s.state for s in await migrations.status(conn)}
        assert {states[name] for name in BASELINES} == {"earlier"}
        assert {states[name] for name in LATER} <= {"pending"}

        assert await migrate(conn) == LATER  # the files added since: run, once
        assert await conn.fetchval("SELECT to_regclass('idx_chat_channel')") is None
        rows = await recorded(conn)
        assert set(rows) == set(EVERYTHING)
        assert all(rows[name][2] for name in BASELINES)
        assert not any(rows[name][2] for name in LATER)
        states = {s.name: s.state for s in await migrations.status(conn)}
        assert {states[name] for name in BASELINES} == {"recognised"}
        # The earlier daz's record is read, never changed (an older daz may still run).
        assert await conn.fetch("SELECT * FROM daz_schema_migrations ORDER BY name") == \
            legacy_before
        assert await migrate(conn) == []
    finally:
        await conn.close()


async def test_a_baseline_whose_comments_were_reworded_since_is_still_recognised(fresh_dsn):
    """The text the last daz before numbered migrations shipped for tell's baseline (its
    comment has been reworded since) still counts as that baseline having run."""
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await as_an_earlier_daz_left_it(conn)
        shipped = next(iter(EARLIER_TEXTS["tell/001_baseline.sql"]))
        await conn.execute("UPDATE daz_schema_migrations SET checksum = $1"
                           " WHERE name = 'plugins/tell/schema.sql'", shipped)
        assert await migrate(conn) == LATER
        assert (await recorded(conn))["tell/001_baseline.sql"][2] is True  # recognised
    finally:
        await conn.close()


async def test_a_baseline_an_earlier_daz_applied_with_an_older_text_is_applied(fresh_dsn):
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await as_an_earlier_daz_left_it(conn)
        await conn.execute("DROP INDEX idx_chat_channel")
        await conn.execute("UPDATE daz_schema_migrations SET checksum = 'an older text'"
                           " WHERE name = 'plugins/sql/schema.sql'")
        assert await migrate(conn) == [name for name in EVERYTHING
                                       if name == "sql/001_baseline.sql" or name in LATER]
        assert await conn.fetchval("SELECT to_regclass('idx_chat_channel')") is not None
        rows = await recorded(conn)
        assert rows["sql/001_baseline.sql"][2] is False
        assert sum(recognised for _, _, recognised in rows.values()) == len(BASELINES) - 1
        await check_documented_schema(conn)
    finally:
        await conn.close()


async def test_a_go_database_is_adopted_by_applying_every_baseline_once(fresh_dsn):
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await load_go_database(conn)
        assert await migrate(conn) == EVERYTHING
        rows = await recorded(conn)
        assert not any(recognised for _, _, recognised in rows.values())
        assert await conn.fetchval("SELECT to_regclass('daz_schema_migrations')") is None
        assert await migrate(conn) == []
        assert await recorded(conn) == rows
        await check_documented_schema(conn)
    finally:
        await conn.close()


def test_db_commands_say_what_an_earlier_daz_applied(fresh_dsn):
    async def earlier():
        conn = await asyncpg.connect(fresh_dsn)
        try:
            await as_an_earlier_daz_left_it(conn)
        finally:
            await conn.close()
    run_sync(earlier)

    status = cli("db", "status", "--dsn", fresh_dsn)
    assert status.exit_code == 0, status.output
    to_apply = f"{len(LATER)} to apply, " if LATER else ""
    assert status.output.strip().endswith(f"{to_apply}{len(BASELINES)} to record"), \
        status.output
    dry = cli("db", "migrate", "--dry-run", "--dsn", fresh_dsn)
    assert f"would record {len(BASELINES)} migration(s) an earlier daz applied" in dry.output
    # Only the files added since numbered migrations would run; no baseline would run again.
    assert ("would apply" in dry.output) == bool(LATER), dry.output
    assert not any(f"  {name}\n" in dry.output.split("would record")[0] for name in BASELINES)
    assert "no rows would change" in dry.output
    done = cli("db", "migrate", "--dsn", fresh_dsn)
    assert done.exit_code == 0, done.output
    assert f"recorded {len(BASELINES)} migration(s) an earlier daz applied" in done.output
    assert "applied 0" not in done.output and "database is up to date" not in done.output
    if LATER:
        assert f"applied {len(LATER)} migration(s)" in done.output
    after = cli("db", "status", "--dsn", fresh_dsn)
    assert after.output.strip().endswith("up to date"), after.output
    assert "recognised" in after.output

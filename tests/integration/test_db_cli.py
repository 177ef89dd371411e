"""``daz db`` on a real PostgreSQL (click's CliRunner), and the scripts' own grants to daz_user
with and without the right to create roles."""
from __future__ import annotations

import json
import uuid
from urllib.parse import urlsplit

import asyncpg
import pytest
from click.testing import CliRunner

from daz.cli import main
from daz.db import migrate as migrations
from tests.conftest import run_sync, with_database
from tests.integration.test_migrations_db import load_go_database


def daz(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env or {"DAZ_DATABASE_URL": ""},
                              catch_exceptions=False)


def query(dsn: str, sql: str, *args):
    async def go():
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()
    return run_sync(go)


def execute(dsn: str, *statements: str) -> None:
    async def go():
        conn = await asyncpg.connect(dsn)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()
    run_sync(go)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def test_migrate_then_status_then_nothing_to_do(fresh_dsn):
    first = daz("db", "migrate", "--dsn", fresh_dsn)
    assert first.exit_code == 0, first.output
    assert f"applied {len(migrations.migrations())} migration(s)" in first.output
    status = daz("db", "status", "--dsn", fresh_dsn)
    assert status.exit_code == 0 and status.output.strip().endswith("up to date")
    assert "sql/001_baseline.sql" in status.output and "pending" not in status.output
    again = daz("db", "migrate", "--dsn", fresh_dsn)
    assert again.exit_code == 0 and "database is up to date" in again.output


def test_the_database_comes_from_the_environment_or_a_go_config(fresh_dsn, tmp_path):
    by_env = daz("db", "status", env={"DAZ_DATABASE_URL": fresh_dsn})
    assert by_env.exit_code == 0 and "pending" in by_env.output
    parts = urlsplit(fresh_dsn)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"plugins": {"sql": {"database": {
        "host": parts.hostname, "port": parts.port or 5432, "database": parts.path[1:],
        "user": parts.username or "", "password": parts.password or ""}}}}))
    by_config = daz("db", "migrate", "--config", str(config))
    assert by_config.exit_code == 0 and "applied" in by_config.output
    assert query(fresh_dsn, "SELECT count(*) FROM daz_migrations")[0][0] > 0


def test_an_unreachable_database_is_a_clear_error():
    result = daz("db", "status", "--dsn", "postgresql://nobody:secret@127.0.0.1:1/none")
    assert result.exit_code != 0
    assert "cannot connect to" in result.output and "secret" not in result.output


def test_grant_gives_the_role_everything_in_public(migrated_dsn):
    role = unique("daz_grantee")
    try:
        result = daz("db", "grant", "--role", role, "--dsn", migrated_dsn)
        assert result.exit_code == 0, result.output
        assert f"granted to {role}" in result.output
        login = query(migrated_dsn, "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", role)
        assert login and login[0][0] is False  # created NOLOGIN
        missing = query(migrated_dsn,
                        "SELECT c.relname FROM pg_class c JOIN pg_namespace n"
                        " ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
                        " AND c.relkind IN ('r', 'v') AND NOT has_table_privilege($1, c.oid,"
                        " 'SELECT, INSERT, UPDATE, DELETE')", role)
        assert missing == []
        sequences = query(migrated_dsn, "SELECT format('%I.%I', schemaname, sequencename)"
                                        " FROM pg_sequences WHERE schemaname = 'public'")
        assert len(sequences) > 10
        assert [s[0] for s in sequences if not query(
            migrated_dsn, "SELECT has_sequence_privilege($1, $2, 'USAGE, SELECT')", role,
            s[0])[0][0]] == []
        assert query(migrated_dsn,
                     "SELECT has_function_privilege($1, 'acquire_retry_batch(integer)',"
                     " 'EXECUTE')", role)[0][0] is True
        # daz_gallery_view and daz_retry_queue_stats are views: covered by the first check.
    finally:
        execute(migrated_dsn, f'DROP OWNED BY "{role}"', f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
def limited_login(pg_server_dsn):
    """A login without CREATEROLE that owns a fresh database; (dsn as that login, db name)."""
    role, database = unique("daz_limited"), unique("daz_test_limited")
    execute(pg_server_dsn, f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEROLE',
            f'CREATE DATABASE "{database}" OWNER "{role}"')
    parts = urlsplit(with_database(pg_server_dsn, database))
    host = parts.netloc.rsplit("@", 1)[-1]
    yield parts._replace(netloc=f"{role}@{host}").geturl(), database
    execute(pg_server_dsn, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)',
            f'DROP ROLE IF EXISTS "{role}"')


def test_grant_to_a_role_we_may_not_create_says_what_to_do(limited_login):
    dsn, _ = limited_login
    role = unique("daz_absent")
    result = daz("db", "grant", "--role", role, "--dsn", dsn)
    assert result.exit_code != 0
    assert "may not create it" in result.output and f"CREATE ROLE {role} NOLOGIN" in result.output
    assert query(dsn, "SELECT count(*) FROM pg_roles WHERE rolname = $1", role)[0][0] == 0


def scripts_granting_to(role: str, tmp_path) -> list[migrations.Migration]:
    """The core migrations 0*.sql with their grantee renamed, so the "role is missing" path can be
    exercised on a shared server where daz_user itself may already exist."""
    out = []
    for m in migrations.migrations():
        if m.owner != "core":
            continue
        copy = tmp_path / m.path.name
        copy.write_text(m.text().replace("daz_user", role), encoding="utf-8")
        out.append(migrations.Migration(m.owner, m.file, copy))
    return out


def test_scripts_apply_without_the_role_when_it_may_not_be_created(limited_login, tmp_path):
    dsn, _ = limited_login
    role = unique("daz_nobody")
    files = scripts_granting_to(role, tmp_path)
    assert any(role in f.text() for f in files)

    async def go():
        conn = await asyncpg.connect(dsn)
        notices = []
        conn.add_log_listener(lambda c, m: notices.append(m.message))
        try:
            applied = await migrations.migrate(conn, files=files)
        finally:
            await conn.close()
        return applied, notices

    applied, notices = run_sync(go)
    assert applied == [f.name for f in files]
    assert any(f"role {role} does not exist" in n for n in notices)
    assert query(dsn, "SELECT count(*) FROM pg_roles WHERE rolname = $1", role)[0][0] == 0


def test_scripts_create_the_role_nologin_and_grant_when_they_may(fresh_dsn, tmp_path):
    role = unique("daz_created")
    try:
        files = scripts_granting_to(role, tmp_path)

        async def go():
            conn = await asyncpg.connect(fresh_dsn)
            try:
                return await migrations.migrate(conn, files=files)
            finally:
                await conn.close()

        assert run_sync(go) == [f.name for f in files]
        assert query(fresh_dsn, "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
                     role)[0][0] is False
        granted = query(fresh_dsn, "SELECT has_table_privilege($1, 'daz_retry_queue', 'INSERT'),"
                                   " has_table_privilege($1, 'daz_gallery_view', 'SELECT'),"
                                   " has_table_privilege($1, 'daz_ollama_responses', 'DELETE')",
                        role)[0]
        assert tuple(granted) == (True, True, True)
    finally:
        execute(fresh_dsn, f'DROP OWNED BY "{role}"', f'DROP ROLE IF EXISTS "{role}"')


def test_cleanup_sessions_closes_the_go_duplicates(fresh_dsn):
    missing = daz("db", "cleanup-sessions", "--dsn", fresh_dsn)
    assert missing.exit_code != 0 and "daz db migrate" in missing.output

    async def go():
        conn = await asyncpg.connect(fresh_dsn)
        try:
            await load_go_database(conn)
        finally:
            await conn.close()

    run_sync(go)  # the Go bot left alice with two active sessions
    result = daz("db", "cleanup-sessions", "--dsn", fresh_dsn)
    assert result.exit_code == 0, result.output
    assert "closed 1 duplicate session(s)" in result.output
    rows = query(fresh_dsn, "SELECT joined_at, is_active, left_at FROM daz_user_tracker_sessions"
                            " WHERE username = 'alice' ORDER BY joined_at")
    assert [(r["is_active"], r["left_at"] is not None) for r in rows] == [(False, True),
                                                                         (True, False)]
    assert "closed 0 duplicate session(s)" in daz("db", "cleanup-sessions", "--dsn",
                                                  fresh_dsn).output

"""Adopting a Go database says what it changes (issue 11 §9), on a real PostgreSQL loaded with
the Go-shaped schema and rows (fixtures/go_daz_schema.sql) plus the duplicates the Go bot could
leave: ``daz db migrate --dry-run`` lists per table the rows it would close, merge or delete and
changes nothing; ``migrate`` then does exactly that and says so; re-running the Go scripts'
functions afterwards is noticed by ``daz db status`` and repaired by ``migrate``."""
from __future__ import annotations

import asyncpg
from click.testing import CliRunner

from daz.cli import main
from daz.db import migrate as migrations
from tests.conftest import run_sync
from tests.integration.test_migrations_db import load_go_database

GO_DUPLICATES = [
    # One more open play in gochan (Go never closed the last play before a restart).
    "INSERT INTO daz_mediatracker_plays (channel, media_id, media_type, title, duration,"
    " started_at, ended_at, completed) VALUES ('gochan', 'old1', 'yt', 'Left open', 100,"
    " '2025-01-01 20:00', NULL, false), ('gochan', 'old2', 'yt', 'Left open too', 50,"
    " '2025-01-01 21:00', NULL, false)",
    # A playlist uid twice (Go's position shifting).
    "INSERT INTO daz_mediatracker_queue (channel, position, uid, media_id, media_type, title,"
    " duration, queued_by, queued_at) VALUES ('gochan', 2, '8', 'def456', 'yt', 'Next up', 300,"
    " 'bob', '2025-01-02 08:02')",
    # A database that went through Go's 027 only: the same image of alice in two channels.
    "ALTER TABLE daz_gallery_images DROP CONSTRAINT daz_gallery_images_username_url_key",
    "INSERT INTO daz_gallery_images (username, url, channel, posted_at, is_active)"
    " VALUES ('alice', 'https://img.example/a1.png', 'otherchan', '2024-11-01 10:00+00', true)",
]

# What an operator gets by running the Go bot's 025 again with psql -f (its definitions, from
# the fixture): complete_retry's body replaced in place, the one-shot fail_retry(bigint, text)
# back next to daz's.
GO_SCRIPTS_AGAIN = [
    "CREATE OR REPLACE FUNCTION complete_retry(retry_id BIGINT) RETURNS VOID LANGUAGE sql AS $go$"
    "\n    UPDATE daz_retry_queue SET status = 'completed', updated_at = now() WHERE id = retry_id;"
    "\n$go$",
    "CREATE OR REPLACE FUNCTION fail_retry(retry_id BIGINT, error_msg TEXT) RETURNS VOID"
    " LANGUAGE sql AS $go$\n    UPDATE daz_retry_queue SET status = 'failed',"
    " last_error = error_msg, updated_at = now()\n    WHERE id = retry_id;\n$go$",
]


def daz(*args: str):
    result = CliRunner().invoke(main, list(args), env={"DAZ_DATABASE_URL": ""},
                                catch_exceptions=False)
    return result


def sql(dsn: str, *statements: str, fetch: str | None = None):
    async def go():
        conn = await asyncpg.connect(dsn)
        try:
            for statement in statements:
                await conn.execute(statement)
            return await conn.fetch(fetch) if fetch else None
        finally:
            await conn.close()
    return run_sync(go)


def snapshot(dsn: str) -> dict:
    counts = {}
    for table, where in (("daz_user_tracker_sessions", "is_active"),
                         ("daz_mediatracker_plays", "ended_at IS NULL"),
                         ("daz_mediatracker_queue", "true"), ("daz_gallery_images", "true"),
                         ("daz_gallery_health_log", "true")):
        counts[table] = sql(dsn, fetch=f"SELECT count(*) FROM {table} WHERE {where}")[0][0]
    return counts


def go_database(dsn: str) -> None:
    async def load():
        conn = await asyncpg.connect(dsn)
        try:
            await load_go_database(conn)
            for statement in GO_DUPLICATES:
                await conn.execute(statement)
        finally:
            await conn.close()
    run_sync(load)


def test_dry_run_lists_per_table_what_migrate_then_does(fresh_dsn):
    go_database(fresh_dsn)
    before = snapshot(fresh_dsn)
    assert before["daz_user_tracker_sessions"] == 3 and before["daz_mediatracker_plays"] == 3

    dry = daz("db", "migrate", "--dry-run", "--dsn", fresh_dsn)
    assert dry.exit_code == 0, dry.output
    out = dry.output
    assert f"would apply {len(migrations.migrations())} migration(s)" in out
    assert "daz_user_tracker_sessions: close 1 duplicate active session(s)" in out
    assert "daz_mediatracker_plays: close 2 open play(s)" in out
    assert "daz_mediatracker_queue: delete 1 duplicate playlist uid(s)" in out
    assert "daz_gallery_images: merge 1 image row(s)" in out
    assert "daz_tell_messages: update 1 delivered message(s)" in out
    assert out.strip().endswith("dry run: nothing was changed")
    assert snapshot(fresh_dsn) == before
    assert sql(fresh_dsn, fetch="SELECT to_regclass('daz_migrations') IS NULL")[0][0]

    done = daz("db", "migrate", "--dsn", fresh_dsn)
    assert done.exit_code == 0, done.output
    for line in ("daz_user_tracker_sessions: closed 1 duplicate active session(s)",
                 "daz_mediatracker_plays: closed 2 open play(s)",
                 "daz_mediatracker_queue: deleted 1 duplicate playlist uid(s)",
                 "daz_gallery_images: merged 1 image row(s)"):
        assert line in done.output, done.output
    after = snapshot(fresh_dsn)
    assert after["daz_user_tracker_sessions"] == 2  # alice once, carol
    assert after["daz_mediatracker_plays"] == 1
    assert after["daz_mediatracker_queue"] == before["daz_mediatracker_queue"] - 1
    assert after["daz_gallery_images"] == before["daz_gallery_images"] - 1
    closed = sql(fresh_dsn, fetch="SELECT left_at, last_activity FROM daz_user_tracker_sessions"
                                  " WHERE username = 'alice' AND NOT is_active")
    assert [r["left_at"] for r in closed] == [r["last_activity"] for r in closed]

    again = daz("db", "migrate", "--dry-run", "--dsn", fresh_dsn)
    assert "database is up to date" in again.output and "no rows would change" in again.output


def test_go_scripts_run_again_are_noticed_by_status_and_repaired_by_migrate(migrated_dsn):
    assert "function(s) are not as daz installs them" not in daz(
        "db", "status", "--dsn", migrated_dsn).output
    sql(migrated_dsn, *GO_SCRIPTS_AGAIN)

    status = daz("db", "status", "--dsn", migrated_dsn)
    assert status.exit_code == 0, status.output
    assert "2 function(s) are not as daz installs them" in status.output, status.output
    assert "complete_retry(bigint): replaced" in status.output
    assert "fail_retry(bigint,text): an extra signature" in status.output
    assert "core/025_retry_persistence.sql" in status.output
    assert next(line for line in status.output.splitlines()
                if line.startswith("core/025")).split()[1] == "repair"
    assert status.output.strip().endswith("1 to repair")

    dry = daz("db", "migrate", "--dry-run", "--dsn", migrated_dsn)
    assert "would restore 2 function(s)" in dry.output and "complete_retry" in dry.output
    assert "would apply" not in dry.output  # a migration is applied once: only its functions

    applied_at = "SELECT applied_at FROM daz_migrations WHERE file = '025_retry_persistence.sql'"
    before = sql(migrated_dsn, fetch=applied_at)
    repaired = daz("db", "migrate", "--dsn", migrated_dsn)
    assert repaired.exit_code == 0, repaired.output
    assert "core/025_retry_persistence.sql" in repaired.output
    assert "restored 2 function(s)" in repaired.output
    assert "database is up to date" in repaired.output
    assert sql(migrated_dsn, fetch=applied_at) == before
    signatures = [r[0] for r in sql(migrated_dsn, fetch=(
        "SELECT oid::regprocedure::text FROM pg_proc WHERE proname = 'fail_retry'"))]
    assert signatures == ["fail_retry(bigint,text,double precision,double precision,"
                          "double precision,double precision)"]
    final = daz("db", "status", "--dsn", migrated_dsn)
    assert final.output.strip().endswith("up to date"), final.output

"""Retention (daz/db/retention.py, ``daz db prune``) on a real PostgreSQL: what the defaults
remove and keep, configured kinds, batches, the dry run, the CLI and the bot's daily task."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from daz.cli import main
from daz.clock import FakeClock
from daz.config import RetentionConfig
from daz.db import retention

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
WALL = NOW.replace(tzinfo=None)  # UTC wall clock, as the Go tables store it


async def seed(db) -> None:
    """Each kind of row at 10, 40, 100 and 400 days old, and one aggregate of each kind."""
    for days in (10, 40, 100, 400):
        at = WALL - timedelta(days=days)
        for kind in ("mediaUpdate", "chatMsg", "pm", "addUser"):
            await db.execute(
                "INSERT INTO daz_core_events (event_type, channel_name, timestamp, username,"
                " message, message_time, raw_data) VALUES ($1, 'c', $2, 'u', $3, $4, '{}')",
                f"cytube.event.{kind}", at, f"{kind} {days}", days)
        await db.execute("INSERT INTO daz_chat_log (username, message, channel, timestamp)"
                         " VALUES ('u', 'hi', 'c', $1)", at)
        await db.execute("INSERT INTO daz_private_messages (event_type, from_user, to_user,"
                         " message, channel, message_time, timestamp)"
                         " VALUES ('cytube.event.pm', 'u', 'bot', 'psst', 'c', 1, $1)", at)
        await db.execute("INSERT INTO daz_user_tracker_sessions (channel, username, joined_at,"
                         " left_at, last_activity, is_active) VALUES ('c', $2, $1, $1, $1, false)",
                         at, f"gone{days}")
        await db.execute("INSERT INTO daz_mediatracker_plays (channel, media_id, media_type,"
                         " title, duration, started_at, ended_at) VALUES ('c', $2, 'yt', 't', 60,"
                         " $1, $1)", at, f"m{days}")
        image = await db.fetchval("INSERT INTO daz_gallery_images (username, url, channel)"
                                  " VALUES ('u', $1, 'c') RETURNING id", f"https://x/{days}.png")
        await db.execute("INSERT INTO daz_gallery_health_log (image_id, check_time)"
                         " VALUES ($1, $2)", image, NOW - timedelta(days=days))
        await db.execute("INSERT INTO daz_analytics_hourly (channel, hour_start, message_count)"
                         " VALUES ('c', $1, 5)", at)
    await db.execute("INSERT INTO daz_user_tracker_sessions (channel, username, joined_at,"
                     " last_activity, is_active) VALUES ('c', 'here', $1, $1, true)",
                     WALL - timedelta(days=400))


async def counts(db) -> dict[str, int]:
    queries = {
        "mediaUpdate": "SELECT count(*) FROM daz_core_events"
                       " WHERE event_type = 'cytube.event.mediaUpdate'",
        "chat events": "SELECT count(*) FROM daz_core_events"
                       " WHERE event_type = 'cytube.event.chatMsg'",
        "pm events": "SELECT count(*) FROM daz_core_events WHERE event_type = 'cytube.event.pm'",
        "joins": "SELECT count(*) FROM daz_core_events WHERE event_type = 'cytube.event.addUser'",
        "chat": "SELECT count(*) FROM daz_chat_log",
        "pms": "SELECT count(*) FROM daz_private_messages",
        "sessions": "SELECT count(*) FROM daz_user_tracker_sessions",
        "plays": "SELECT count(*) FROM daz_mediatracker_plays",
        "health": "SELECT count(*) FROM daz_gallery_health_log",
        "images": "SELECT count(*) FROM daz_gallery_images",
        "hourly": "SELECT count(*) FROM daz_analytics_hourly",
    }
    return {name: await db.fetchval(sql) for name, sql in queries.items()}


async def test_defaults_remove_old_media_updates_and_health_checks_only(database):
    await seed(database)
    naps = []

    async def nap(seconds):
        naps.append(seconds)

    outcomes = await retention.prune(database, RetentionConfig(batch_size=1), now=NOW, sleep=nap)
    removed = {o.rule.kind: o.rows for o in outcomes}
    assert removed["mediaUpdate core events"] == 3 and removed["gallery health checks"] == 2
    assert sum(removed.values()) == 5
    assert len(naps) >= 3  # one row a batch, a pause between batches
    after = await counts(database)
    assert after["mediaUpdate"] == 1 and after["health"] == 2
    kept = {"chat events": 4, "pm events": 4, "joins": 4, "chat": 4, "pms": 4, "sessions": 5,
            "plays": 4, "images": 4, "hourly": 4}
    assert {name: after[name] for name in kept} == kept
    lines = retention.describe(outcomes, dry_run=False)
    assert any("chat lines" in line and "kept forever" in line for line in lines)
    assert any("removed 3 row(s) older than 30 days" in line for line in lines)


async def test_every_kind_is_configurable_and_aggregates_and_open_sessions_stay(database):
    await seed(database)
    settings = RetentionConfig(chat_days=50, private_messages_days=50, sessions_days=50,
                               plays_days=50, media_update_events_days=0,
                               gallery_health_log_days=0)
    await retention.prune(database, settings, now=NOW)
    after = await counts(database)
    assert after["chat"] == 2 and after["chat events"] == 2
    assert after["pms"] == 2 and after["pm events"] == 2
    assert after["sessions"] == 3  # 10 and 40 days, and the open one of 400 days
    assert after["plays"] == 2
    assert after["mediaUpdate"] == 4 and after["health"] == 4  # 0 = forever
    assert after["joins"] == 4 and after["hourly"] == 4 and after["images"] == 4


async def test_a_dry_run_counts_and_removes_nothing(database):
    await seed(database)
    before = await counts(database)
    outcomes = await retention.prune(database, RetentionConfig(chat_days=50), now=NOW,
                                     dry_run=True)
    assert {o.rule.kind: o.rows for o in outcomes if o.rows} == {
        "mediaUpdate core events": 3, "gallery health checks": 2, "chat lines": 2,
        "chat core events": 2}
    assert await counts(database) == before
    assert any("would remove 2 row(s)" in line for line in retention.describe(outcomes, True))


async def test_a_missing_table_is_skipped_not_an_error(database):
    await database.execute("DROP TABLE daz_gallery_health_log")
    outcomes = await retention.prune(database, RetentionConfig(), now=NOW)
    health = next(o for o in outcomes if o.rule.table == "daz_gallery_health_log")
    assert health.skipped == "daz_gallery_health_log does not exist"


def test_daz_db_prune_prints_what_it_removes(migrated_dsn, tmp_path):
    from daz.db.pool import Database
    from tests.conftest import run_sync

    async def load():
        db = Database(migrated_dsn, min_size=1, max_size=2)
        await db.start()
        try:
            await seed(db)
            # the CLI prunes against the real clock: move the rows back to match
            shift = datetime.now(UTC) - NOW
            await db.execute("UPDATE daz_core_events SET timestamp = timestamp + $1", shift)
            await db.execute("UPDATE daz_gallery_health_log SET check_time = check_time + $1",
                             shift)
        finally:
            await db.close()
    run_sync(load)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"core": {"retention": {"media_update_events_days": 60}}}))
    runner = CliRunner()
    env = {"DAZ_DATABASE_URL": migrated_dsn}
    dry = runner.invoke(main, ["db", "prune", "--dry-run", "--config", str(config)], env=env)
    assert dry.exit_code == 0, dry.output
    assert "mediaUpdate core events" in dry.output and "would remove 2 row(s) older than 60" \
        in dry.output and "would remove 4 row(s) in all" in dry.output
    done = runner.invoke(main, ["db", "prune", "--config", str(config)], env=env)
    assert done.exit_code == 0 and "removed 4 row(s) in all" in done.output
    again = runner.invoke(main, ["db", "prune", "--config", str(config)], env=env)
    assert "removed 0 row(s) in all" in again.output
    config.write_text(json.dumps({"core": {"retention": {"chat_days": -1}}}))
    bad = runner.invoke(main, ["db", "prune", "--config", str(config)], env=env)
    assert bad.exit_code != 0 and "chat_days" in bad.output


async def test_the_running_bot_prunes_on_its_own(database):
    await seed(database)
    clock = FakeClock(start=NOW.timestamp())
    config = RetentionConfig(first_run_minutes=30)
    task = retention.RetentionTask(database, config, clock)
    task.start()
    try:
        await clock.run(29 * 60)
        assert task.runs == 0  # not before its first run
        await clock.run(60)
        assert task.runs == 1 and sum(o.rows for o in task.last) == 5
        await clock.run(config.interval_hours * 3600)
        assert task.runs == 2 and sum(o.rows for o in task.last) == 0  # daily, nothing left
    finally:
        await task.stop()
    assert (await counts(database))["mediaUpdate"] == 1


def test_nothing_to_prune_starts_no_task():
    forever = RetentionConfig(media_update_events_days=0, gallery_health_log_days=0)
    task = retention.RetentionTask(None, forever)
    task.start()
    assert task.task is None


def test_negative_days_are_refused():
    with pytest.raises(ValueError):
        RetentionConfig(plays_days=-3)

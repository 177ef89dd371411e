"""The greeter and tell schema files: Go names and types on an empty database, re-runs, and a
database the Go Daz built (its DDL and rows)."""
from __future__ import annotations

import asyncpg

from daz.clock import FakeClock
from daz.db.migrate import PLUGINS_DIR, migrate, migrations, run_script
from daz.db.pool import Database
from daz.plugins.eventfilter import EventFilter
from daz.plugins.greeter import Greeter
from daz.plugins.registry import available_plugins
from daz.plugins.tell import Tell
from tests.integration.room_feed import joined, room_joined
from tests.plugin_kit import Kit

GREETER = PLUGINS_DIR / "greeter" / "migrations" / "001_baseline.sql"
TELL = PLUGINS_DIR / "tell" / "migrations" / "001_baseline.sql"

GO_COLUMNS = {
    "daz_greeter_history": {
        "id": "bigint", "channel": "character varying", "username": "character varying",
        "greeting_type": "character varying", "greeting_text": "text",
        "greeting_metadata": "jsonb", "created_at": "timestamp without time zone"},
    "daz_greeter_preferences": {
        "id": "integer", "channel": "character varying", "username": "character varying",
        "opted_out": "boolean", "opt_out_reason": "character varying",
        "created_at": "timestamp without time zone", "updated_at": "timestamp without time zone"},
    "daz_greeter_state": {
        "id": "integer", "channel": "character varying", "last_greeting_at":
        "timestamp without time zone", "last_greeting_user": "character varying",
        "total_greetings_sent": "integer", "created_at": "timestamp without time zone",
        "updated_at": "timestamp without time zone"},
    "daz_tell_messages": {
        "id": "integer", "channel": "character varying", "from_user": "character varying",
        "to_user": "character varying", "message": "text", "is_pm": "boolean",
        "created_at": "timestamp without time zone", "expires_at": "timestamp without time zone",
        "delivered": "boolean", "delivered_at": "timestamp without time zone"},
}

GO_DDL = """
CREATE TABLE daz_greeter_history (
    id BIGSERIAL PRIMARY KEY, channel VARCHAR(255) NOT NULL, username VARCHAR(255) NOT NULL,
    greeting_type VARCHAR(50) NOT NULL, greeting_text TEXT NOT NULL, greeting_metadata JSONB,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE INDEX idx_greeter_history_user ON daz_greeter_history (channel, username, created_at DESC);
CREATE TABLE daz_greeter_preferences (
    id SERIAL PRIMARY KEY, channel VARCHAR(255) NOT NULL, username VARCHAR(255) NOT NULL,
    opted_out BOOLEAN DEFAULT false, opt_out_reason VARCHAR(255),
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, UNIQUE (channel, username));
CREATE TABLE daz_greeter_state (
    id SERIAL PRIMARY KEY, channel VARCHAR(255) NOT NULL UNIQUE, last_greeting_at TIMESTAMP,
    last_greeting_user VARCHAR(255), total_greetings_sent INTEGER DEFAULT 0,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE INDEX idx_greeter_state_channel ON daz_greeter_state (channel);
CREATE TABLE daz_tell_messages (
    id SERIAL PRIMARY KEY, channel VARCHAR(255) NOT NULL, from_user VARCHAR(255) NOT NULL,
    to_user VARCHAR(255) NOT NULL, message TEXT NOT NULL, is_pm BOOLEAN DEFAULT false,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, expires_at TIMESTAMP NOT NULL,
    delivered BOOLEAN DEFAULT false, delivered_at TIMESTAMP);
CREATE INDEX idx_tell_pending ON daz_tell_messages (channel, to_user, delivered);
CREATE INDEX idx_tell_expires ON daz_tell_messages (expires_at) WHERE delivered = false;
CREATE UNIQUE INDEX idx_tell_pending_unique ON daz_tell_messages (channel, lower(to_user))
    WHERE delivered = false;
"""

# FakeClock starts at epoch 1_800_000_000 (2027-01-15 08:00 UTC).
GO_ROWS = """
INSERT INTO daz_greeter_history (channel, username, greeting_type, greeting_text, created_at)
VALUES ('testchan', 'olduser', 'standard', 'Welcome back, olduser!', '2026-01-01 10:00');
INSERT INTO daz_greeter_preferences (channel, username, opted_out, opt_out_reason)
VALUES ('testchan', 'Alice', true, 'User requested via !greeter command'),
       ('testchan', 'alice', true, 'User requested via !greeter command');
INSERT INTO daz_greeter_state (channel, last_greeting_at, last_greeting_user,
                               total_greetings_sent)
VALUES ('testchan', '2026-01-01 10:00', 'olduser', 10);
INSERT INTO daz_tell_messages (channel, from_user, to_user, message, is_pm, created_at,
                               expires_at, delivered, delivered_at)
VALUES ('testchan', 'carol', 'Bob', 'go pending', false, '2027-01-14 08:00', '2027-01-21 08:00',
        false, NULL),
       ('testchan', 'carol', 'bob', 'go delivered', false, '2027-01-10 08:00',
        '2027-01-17 08:00', true, '2027-01-11 08:00');
"""


async def _columns(conn, table):
    rows = await conn.fetch("SELECT column_name, data_type FROM information_schema.columns"
                            " WHERE table_name = $1", table)
    return {r["column_name"]: r["data_type"] for r in rows}


async def _indexes(conn, table):
    return {r["indexname"] for r in await conn.fetch(
        "SELECT indexname FROM pg_indexes WHERE tablename = $1", table)}


def test_both_schemas_are_applied_in_plugin_order():
    names = [m.name for m in migrations()]
    assert "greeter" in available_plugins() and "tell" in available_plugins()
    assert "greeter/001_baseline.sql" in names and "tell/001_baseline.sql" in names


async def test_empty_database_gets_the_go_names_and_types_and_reruns(fresh_dsn):
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await migrate(conn)
        for _ in range(2):  # re-runnable
            for path in (GREETER, TELL):
                async with conn.transaction():
                    await run_script(conn, path.name, path.read_text())
        for table, columns in GO_COLUMNS.items():
            have = await _columns(conn, table)
            assert {k: have.get(k) for k in columns} == columns, table
        assert {"sent_at", "claimed_by", "source_key"} <= set(
            await _columns(conn, "daz_tell_messages"))
        assert await conn.fetchval("SELECT indisunique FROM pg_index WHERE indexrelid ="
                                   " 'idx_tell_source_key'::regclass")
        constraints = {r["conname"] for r in await conn.fetch("SELECT conname FROM pg_constraint")}
        assert {"daz_greeter_state_channel_key",
                "daz_greeter_preferences_channel_username_key"} <= constraints
        assert {"idx_greeter_history_user", "idx_greeter_history_type"} <= await _indexes(
            conn, "daz_greeter_history")
        assert {"idx_tell_pending", "idx_tell_expires"} <= await _indexes(
            conn, "daz_tell_messages")
        assert "idx_tell_pending_unique" not in await _indexes(conn, "daz_tell_messages")
    finally:
        await conn.close()


async def test_a_go_database_is_upgraded_and_its_rows_keep_working(fresh_dsn):
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await conn.execute(GO_DDL)
        await conn.execute(GO_ROWS)
        await migrate(conn)
        async with conn.transaction():  # and again, as after an upgrade of daz
            await run_script(conn, TELL.name, TELL.read_text())
            await run_script(conn, GREETER.name, GREETER.read_text())
        assert "idx_tell_pending_unique" not in await _indexes(conn, "daz_tell_messages")
        # Go rows have no source key, and several NULL keys never conflict.
        assert await conn.fetchval("SELECT count(*) FROM daz_tell_messages"
                                   " WHERE source_key IS NULL") == 2
        # The Go-delivered row counts as sent: it is never handed out again.
        assert await conn.fetchval("SELECT sent_at IS NOT NULL FROM daz_tell_messages"
                                   " WHERE message = 'go delivered'")
    finally:
        await conn.close()

    db = Database(fresh_dsn, min_size=1, max_size=4)
    await db.start()
    clock = FakeClock()
    try:
        kit = await Kit.start({"eventfilter": EventFilter, "greeter": Greeter, "tell": Tell},
                              sections={"tell": {"join_delay_seconds": 0},
                                        "greeter": {"delay_min_seconds": 0,
                                                    "delay_max_seconds": 0,
                                                    "skip_probability": 0,
                                                    "use_greeting_engine": False}},
                              db=db, clock=clock)
        await room_joined(kit)
        # A second pending tell for Bob is allowed now (Go's unique index refused it).
        kit.user("dave")
        await kit.chat("dave", "!tell BOB another one")
        assert kit.room.said[-1].startswith("OK, I'll tell BOB")
        await joined(kit, "bob")
        await kit.plugin("tell").sweep_now()
        await kit.plugin("greeter").idle()
        tells = [s for s in kit.room.said if s.startswith("bob:")]
        assert tells == ["bob: carol left you a message 1 day ago: go pending",
                         "bob: dave left you a message just now: another one"]
        # Go's opt-outs hold whatever the case; !greeter on clears every case variant.
        await joined(kit, "ALICE")
        await kit.plugin("greeter").idle()
        assert not any("ALICE" in s for s in kit.room.said)
        kit.user("alice")
        await kit.chat("alice", "!greeter on")
        assert await db.fetchval("SELECT count(*) FROM daz_greeter_preferences"
                                 " WHERE opted_out") == 0
        # Go's greeter state row is continued, counted once per greeting.
        assert await db.fetchval("SELECT total_greetings_sent FROM daz_greeter_state") == 11
        assert await db.fetchval("SELECT last_greeting_user FROM daz_greeter_state") == "bob"
        await kit.stop()
    finally:
        await db.close()

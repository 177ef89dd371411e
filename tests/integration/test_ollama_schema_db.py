"""core migration 031 on a database Go Daz created, applied twice, and read by daz's store."""
import asyncio

import asyncpg

from daz.db.migrate import CORE_DIR, run_script
from daz.plugins.ollama.store import ResponseStore, message_hash

# The tables as Go Daz's 031 left them (no functions), with a message it already answered.
GO_031 = """
CREATE TABLE daz_ollama_responses (
    id BIGSERIAL PRIMARY KEY, channel VARCHAR(255) NOT NULL, username VARCHAR(255) NOT NULL,
    message_hash VARCHAR(64) NOT NULL, message_time BIGINT NOT NULL,
    responded_at TIMESTAMP NOT NULL DEFAULT NOW(), response_text TEXT,
    UNIQUE(channel, username, message_hash, message_time));
CREATE TABLE daz_ollama_rate_limits (
    id SERIAL PRIMARY KEY, channel VARCHAR(255) NOT NULL, username VARCHAR(255) NOT NULL,
    last_response_at TIMESTAMP NOT NULL, UNIQUE(channel, username));
"""


class _Db:
    """The three Database methods ResponseStore uses, on one plain connection."""

    def __init__(self, conn):
        self.conn = conn

    async def fetchval(self, *a):
        return await self.conn.fetchval(*a)

    async def execute(self, *a):
        return await self.conn.execute(*a)


async def test_031_on_a_go_database_twice(fresh_dsn):
    conn = await asyncpg.connect(fresh_dsn, server_settings={"TimeZone": "UTC"})
    try:
        await conn.execute(GO_031)
        digest = message_hash("chan", "alice", "dazza hi", 1700000000000)
        await conn.execute(
            "INSERT INTO daz_ollama_responses (channel, username, message_hash, message_time,"
            " response_text) VALUES ('chan', 'alice', $1, 1700000000000, 'g''day')", digest)
        await conn.execute("INSERT INTO daz_ollama_rate_limits (channel, username,"
                           " last_response_at) VALUES ('chan', 'alice', localtimestamp)")
        text = (CORE_DIR / "031_ollama_responses.sql").read_text()
        for _ in range(2):
            async with conn.transaction():
                await run_script(conn, "031_ollama_responses.sql", text)
        store = ResponseStore(_Db(conn))
        # What Go answered is not answered again; a new line is claimed once.
        assert not await store.claim("chan", "alice", digest, 1700000000000)
        assert await store.claim("chan", "alice", digest, 1700000000001)
        assert not await store.claim("chan", "alice", digest, 1700000000001)
        # Go's rate-limit row is honoured.
        assert not await conn.fetchval("SELECT ollama_take_rate_limit('chan', 'alice', 10)")
        assert await conn.fetchval("SELECT ollama_take_rate_limit('chan', 'bob', 10)")
        assert await conn.fetchval("SELECT count(*) FROM daz_ollama_responses") == 2
    finally:
        await conn.close()


async def test_the_store_claims_once_and_a_refused_channel_limit_leaves_the_user_window(
        database):
    store = ResponseStore(database)
    assert await store.claim("c", "u", "h", 1)
    assert not await store.claim("c", "u", "h", 1)
    assert await store.claim("c", "u", "h", 2)
    assert await store.take_rate_limits("c", "alice", 10, 1) is None
    assert await store.take_rate_limits("c", "alice", 10, 1) == "user"
    assert await store.take_rate_limits("c", "bob", 10, 1) == "channel"
    await asyncio.sleep(1.5)  # the channel's second is over; bob's own window was never taken
    assert await store.take_rate_limits("c", "bob", 10, 1) is None

"""Scripts 027–030 on a database the Go Daz left behind, and run again and again."""
import asyncpg

from daz.db.migrate import CORE_DIR, migrate, run_script

GO_ERA = """
CREATE TABLE daz_gallery_images (
    id BIGSERIAL PRIMARY KEY, username VARCHAR(255) NOT NULL, url TEXT NOT NULL,
    channel VARCHAR(255) NOT NULL, posted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(), updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    is_active BOOLEAN DEFAULT true, failure_count INTEGER DEFAULT 0,
    first_failure_at TIMESTAMPTZ, last_check_at TIMESTAMPTZ, next_check_at TIMESTAMPTZ,
    pruned_reason TEXT,
    CONSTRAINT unique_user_channel_image UNIQUE (username, url, channel));
CREATE TABLE daz_gallery_locks (
    username VARCHAR(255) PRIMARY KEY, channel VARCHAR(255) NOT NULL,
    is_locked BOOLEAN DEFAULT false, locked_at TIMESTAMPTZ, locked_by VARCHAR(255),
    created_at TIMESTAMPTZ DEFAULT now(), updated_at TIMESTAMPTZ DEFAULT now(),
    CONSTRAINT unique_user_channel_lock UNIQUE (username, channel));
INSERT INTO daz_gallery_images (username, url, channel, is_active, pruned_reason, posted_at)
VALUES ('alice', 'https://x.example/a.png', 'one', true, NULL, now() - interval '2 days'),
       ('alice', 'https://x.example/a.png', 'two', true, NULL, now() - interval '1 day'),
       ('alice', 'https://x.example/old.png', 'one', false, 'Gallery limit (25 images) reached',
        now() - interval '9 days'),
       ('bob', 'https://x.example/gone.png', 'one', false, 'HTTP 404', now());
INSERT INTO daz_gallery_locks (username, channel, is_locked) VALUES ('alice', 'one', true);
"""

GALLERY_SCRIPTS = ["027_gallery_system.sql", "028_fix_gallery_race_condition.sql",
                   "029_graveyard_recovery_procedure.sql", "030_fix_gallery_duplicates.sql"]


async def snapshot(conn):
    images = await conn.fetch("SELECT username, url, channel, state, is_active, pruned_reason"
                              " FROM daz_gallery_images ORDER BY username, url")
    locks = await conn.fetch("SELECT username, channel, is_locked FROM daz_gallery_locks"
                             " ORDER BY username, channel")
    return [tuple(r) for r in images], [tuple(r) for r in locks]


async def test_a_go_era_gallery_is_upgraded_and_the_scripts_rerun_cleanly(fresh_dsn):
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await conn.execute(GO_ERA)
        await migrate(conn)
        images, _locks = await snapshot(conn)
        # The same URL in two channels became one row, the latest post kept.
        assert images == [
            ("alice", "https://x.example/a.png", "two", "active", True, None),
            ("alice", "https://x.example/old.png", "one", "pruned", False,
             "Gallery limit (25 images) reached"),
            ("bob", "https://x.example/gone.png", "one", "dead", False, "HTTP 404"),
        ]
        # Locks are per channel now: a second channel can be locked.
        await conn.execute("INSERT INTO daz_gallery_locks (username, channel, is_locked)"
                           " VALUES ('alice', 'two', true)")
        # A Go-style writer flipping is_active still lands in a consistent state.
        await conn.execute("UPDATE daz_gallery_images SET is_active = true, pruned_reason = NULL"
                           " WHERE url LIKE '%gone.png'")
        assert await conn.fetchval("SELECT state FROM daz_gallery_images"
                                   " WHERE url LIKE '%gone.png'") == "active"
        before = await snapshot(conn)
        for _ in range(2):
            for name in GALLERY_SCRIPTS:
                async with conn.transaction():
                    await run_script(conn, name, (CORE_DIR / name).read_text())
        assert await snapshot(conn) == before
        assert await conn.fetchval("SELECT add_gallery_image('carol', 'https://x.example/c.png',"
                                   " 'one', NULL, 25)") is not None
    finally:
        await conn.close()

-- mediatracker: plays, per-media stats, the playlist mirror and the media library.
-- The Go Daz names and types (a Go database is adopted as it is); re-runnable, on an empty database and on
-- one the Go bot created. Times are UTC wall clock in TIMESTAMP columns (sessions run in UTC).

CREATE TABLE IF NOT EXISTS daz_mediatracker_plays (
    id         BIGSERIAL PRIMARY KEY,
    channel    VARCHAR(255) NOT NULL,
    media_id   VARCHAR(255) NOT NULL,
    media_type VARCHAR(50)  NOT NULL,
    title      TEXT         NOT NULL,
    duration   INTEGER      NOT NULL,
    started_at TIMESTAMP    NOT NULL,
    ended_at   TIMESTAMP,
    queued_by  VARCHAR(255),
    completed  BOOLEAN DEFAULT false,
    metadata   JSONB
);
CREATE INDEX IF NOT EXISTS idx_mediatracker_plays_time
    ON daz_mediatracker_plays (channel, started_at);
CREATE INDEX IF NOT EXISTS idx_mediatracker_plays_media
    ON daz_mediatracker_plays (channel, media_id);

-- At most one open play per channel: a media change closes the previous play before it opens
-- the next. Go Daz shared one "current media" between rooms and never closed the last play
-- before a restart, so its tables can hold several open rows per channel: close all but the
-- newest at their nominal end (what the plugin does on start for the rows it finds), then let
-- the index keep it that way.
WITH ranked AS (
    SELECT id, row_number() OVER (PARTITION BY channel ORDER BY started_at DESC, id DESC) AS n
    FROM daz_mediatracker_plays
    WHERE ended_at IS NULL
)
UPDATE daz_mediatracker_plays p
SET ended_at = p.started_at + make_interval(secs => greatest(p.duration, 0))
FROM ranked WHERE p.id = ranked.id AND ranked.n > 1;
CREATE UNIQUE INDEX IF NOT EXISTS idx_mediatracker_plays_one_open
    ON daz_mediatracker_plays (channel) WHERE ended_at IS NULL;

CREATE TABLE IF NOT EXISTS daz_mediatracker_queue (
    id         SERIAL PRIMARY KEY,
    channel    VARCHAR(255) NOT NULL,
    position   INTEGER      NOT NULL,
    uid        VARCHAR(255),
    media_id   VARCHAR(255) NOT NULL,
    media_type VARCHAR(50)  NOT NULL,
    title      TEXT         NOT NULL,
    duration   INTEGER      NOT NULL,
    queued_by  VARCHAR(255),
    queued_at  TIMESTAMP    NOT NULL,
    UNIQUE (channel, position)
);
-- Go added uid by ALTER; tables from before that lack it.
ALTER TABLE daz_mediatracker_queue ADD COLUMN IF NOT EXISTS uid VARCHAR(255);
CREATE INDEX IF NOT EXISTS idx_queue_uid ON daz_mediatracker_queue (channel, uid);

-- The mirror identifies rows by playlist uid (CyTube uids are unique in a channel's playlist).
-- Go's position shifting could leave a uid twice; the table is only a mirror, rewritten on the
-- first sync after start, so surplus copies are simply dropped.
DELETE FROM daz_mediatracker_queue q
USING daz_mediatracker_queue newer
WHERE q.channel = newer.channel AND q.uid = newer.uid AND q.id < newer.id;
CREATE UNIQUE INDEX IF NOT EXISTS idx_mediatracker_queue_channel_uid
    ON daz_mediatracker_queue (channel, uid) WHERE uid IS NOT NULL;

CREATE TABLE IF NOT EXISTS daz_mediatracker_stats (
    id             SERIAL PRIMARY KEY,
    channel        VARCHAR(255) NOT NULL,
    media_id       VARCHAR(255) NOT NULL,
    media_type     VARCHAR(50)  NOT NULL,
    title          TEXT         NOT NULL,
    play_count     BIGINT DEFAULT 0,
    total_duration BIGINT DEFAULT 0,
    last_played    TIMESTAMP,
    first_played   TIMESTAMP,
    UNIQUE (channel, media_id)  -- the ON CONFLICT target of every play
);
CREATE INDEX IF NOT EXISTS idx_mediatracker_stats_popular
    ON daz_mediatracker_stats (channel, play_count DESC);

CREATE TABLE IF NOT EXISTS daz_mediatracker_library (
    id          BIGSERIAL PRIMARY KEY,
    url         TEXT         NOT NULL UNIQUE,
    media_id    VARCHAR(255) NOT NULL,
    media_type  VARCHAR(50)  NOT NULL,
    title       TEXT         NOT NULL,
    duration    INTEGER,
    first_seen  TIMESTAMP    NOT NULL,
    last_played TIMESTAMP,
    play_count  INTEGER DEFAULT 0,
    added_by    VARCHAR(100),
    channel     VARCHAR(100) NOT NULL,
    metadata    JSONB,
    created_at  TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    -- One row per media: a play is counted on this key even when the URL was built differently.
    UNIQUE (media_id, media_type)
);
-- Go also created idx_library_url and idx_library_media, exact copies of the two unique
-- indexes above; they only slow writes, so they are not created here (nothing refers to them).
CREATE INDEX IF NOT EXISTS idx_library_channel ON daz_mediatracker_library (channel);

-- What a person queued, newest first (the user page matches lower(queued_by)).
-- CONCURRENTLY: built outside the transaction without stopping writers (daz/db/online.py).
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_mediatracker_plays_queued_by
    ON daz_mediatracker_plays (channel, lower(queued_by), started_at DESC);

-- The dashboard's "most played": the ten first in this order, straight from the index (ties
-- on play_count are common, and sorting every media of a channel for them is what it avoided).
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_mediatracker_stats_top
    ON daz_mediatracker_stats (channel, play_count DESC, title);

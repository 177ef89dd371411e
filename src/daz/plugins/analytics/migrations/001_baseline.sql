-- analytics: hourly and daily channel figures, per-user message counts.
-- The Go Daz names and types (a Go database is adopted as it is) plus what daz needs to count
-- exactly once; re-runnable, on an empty database and on one the Go bot created. hour_start and the user
-- timestamps are UTC wall clock in TIMESTAMP columns (sessions run in UTC).

CREATE TABLE IF NOT EXISTS daz_analytics_hourly (
    id            SERIAL PRIMARY KEY,
    channel       VARCHAR(255) NOT NULL,
    hour_start    TIMESTAMP    NOT NULL,
    message_count BIGINT  DEFAULT 0,
    unique_users  INTEGER DEFAULT 0,
    media_plays   INTEGER DEFAULT 0,
    commands_used INTEGER DEFAULT 0,
    metadata      JSONB,
    updated_at    TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (channel, hour_start)  -- the ON CONFLICT target of every flush
);
-- Go added updated_at by ALTER; older tables lack it.
ALTER TABLE daz_analytics_hourly ADD COLUMN IF NOT EXISTS updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP;
-- daz also counts real joins per hour (the Go bot had no such figure).
ALTER TABLE daz_analytics_hourly ADD COLUMN IF NOT EXISTS joins INTEGER DEFAULT 0;
CREATE INDEX IF NOT EXISTS idx_analytics_hourly_time
    ON daz_analytics_hourly (channel, hour_start DESC);

CREATE TABLE IF NOT EXISTS daz_analytics_daily (
    id                SERIAL PRIMARY KEY,
    channel           VARCHAR(255) NOT NULL,
    day_date          DATE         NOT NULL,
    total_messages    BIGINT  DEFAULT 0,
    unique_users      INTEGER DEFAULT 0,
    total_media_plays INTEGER DEFAULT 0,
    peak_users        INTEGER DEFAULT 0,
    active_hours      INTEGER DEFAULT 0,
    metadata          JSONB,
    updated_at        TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (channel, day_date)
);
ALTER TABLE daz_analytics_daily ADD COLUMN IF NOT EXISTS updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP;
-- The day's joins: the sum of its hours' (see daz_analytics_hourly.joins).
ALTER TABLE daz_analytics_daily ADD COLUMN IF NOT EXISTS joins INTEGER DEFAULT 0;
CREATE INDEX IF NOT EXISTS idx_analytics_daily_date
    ON daz_analytics_daily (channel, day_date DESC);

CREATE TABLE IF NOT EXISTS daz_analytics_user_stats (
    id             SERIAL PRIMARY KEY,
    channel        VARCHAR(255) NOT NULL,
    username       VARCHAR(255) NOT NULL,
    total_messages BIGINT  DEFAULT 0,
    first_seen     TIMESTAMP NOT NULL,
    last_seen      TIMESTAMP NOT NULL,
    active_days    INTEGER DEFAULT 0,
    metadata       JSONB,
    UNIQUE (channel, username)
);
CREATE INDEX IF NOT EXISTS idx_analytics_user_stats
    ON daz_analytics_user_stats (channel, total_messages DESC);

-- daz only: who chatted in which hour. unique_users of an hour (and of a day) is counted from
-- these names, so a restart inside an hour, a retried flush or two processes on one channel
-- never count a person twice. Rows older than the retention are deleted by the plugin.
CREATE TABLE IF NOT EXISTS daz_analytics_hourly_users (
    channel    VARCHAR(255) NOT NULL,
    hour_start TIMESTAMP    NOT NULL,
    username   VARCHAR(255) NOT NULL,
    PRIMARY KEY (channel, hour_start, username)
);

-- daz only: the id of every applied flush. Inserted in the same transaction as the counts it
-- carries, so a flush retried after a commit whose reply was lost is recognised and skipped.
CREATE TABLE IF NOT EXISTS daz_analytics_flushes (
    flush_id   UUID PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_analytics_flushes_applied ON daz_analytics_flushes (applied_at);

-- One person's figures (the user page matches lower(username)).
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_analytics_user_stats_lower
    ON daz_analytics_user_stats (channel, lower(username));

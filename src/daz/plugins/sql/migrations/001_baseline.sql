-- Core logging tables of the sql plugin (Go Daz names and types), applied first of all.
-- Re-runnable: a database the Go bot created keeps its rows; missing columns/indexes are added.

CREATE TABLE IF NOT EXISTS daz_core_events (
    id           BIGSERIAL PRIMARY KEY,
    event_type   VARCHAR(50)  NOT NULL,
    channel_name VARCHAR(100) NOT NULL,
    timestamp    TIMESTAMP    NOT NULL,
    username     VARCHAR(100),
    message      TEXT,
    message_time BIGINT,
    video_id     VARCHAR(255),
    video_type   VARCHAR(50),
    title        TEXT,
    duration     INTEGER,
    raw_data     JSONB        NOT NULL,
    created_at   TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

-- Older Go databases lack these; the Go bot added them the same way.
ALTER TABLE daz_core_events ADD COLUMN IF NOT EXISTS message_time BIGINT;
ALTER TABLE daz_core_events ADD COLUMN IF NOT EXISTS to_user VARCHAR(100);
ALTER TABLE daz_core_events ADD COLUMN IF NOT EXISTS video_id VARCHAR(255);
ALTER TABLE daz_core_events ADD COLUMN IF NOT EXISTS video_type VARCHAR(50);
ALTER TABLE daz_core_events ADD COLUMN IF NOT EXISTS title TEXT;
ALTER TABLE daz_core_events ADD COLUMN IF NOT EXISTS duration INTEGER;

-- Only chat has a natural key (CyTube's ms time + sender + text, below). Every other event
-- type (joins, leaves, media, PMs sent twice by a retry) needs a writer-chosen id to make a
-- replayed or retried batch idempotent: the writer puts a UUID in event_uid and inserts with
-- ON CONFLICT DO NOTHING. NULL (Go-era rows, writers that do not care) never
-- conflicts, so the index is a plain (non-partial) unique index that ON CONFLICT can infer.
ALTER TABLE daz_core_events ADD COLUMN IF NOT EXISTS event_uid UUID;
-- CONCURRENTLY (here and below): on a Go-era table of millions of rows the build takes seconds
-- to minutes, and it must not stop the bot's writes; daz/db/online.py runs these statements
-- outside the transaction, resumes an interrupted one, and on a big table lets the bot serve
-- meanwhile. This one first: the event logger's staged path looks rows up by event_uid.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_events_event_uid
    ON daz_core_events (event_uid);

-- The join replay re-sends recent chat, so chat needs a natural key that also covers Go-era rows
-- (they have no event_uid). Go keyed a line on (channel_name, message_time, username) only, in
-- idx_events_chatmsg_unique, which silently drops a second, different line one sender says in
-- the same millisecond (CyTube stamps chat with Date.now()). The key here adds the text; md5
-- because a btree entry cannot hold a 100 kB message. The replay re-sends the same text, so it
-- still matches. Go rows are unique under the narrower key, so building this one cannot fail.
-- It is built before the Go index is dropped, so chat is never without a key. A Go bot
-- writing here again would need idx_events_chatmsg_unique back: its ON CONFLICT names those
-- columns (docs/architecture.md, "Differences").
-- While it builds, the Go key still refuses a replayed line, so nothing is doubled meanwhile;
-- the drop runs only once the new index is valid (online.py holds a file's drops until then).
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_events_chatmsg_text_unique
    ON daz_core_events (channel_name, message_time, username, md5(message))
    WHERE event_type = 'cytube.event.chatMsg';
DROP INDEX CONCURRENTLY IF EXISTS idx_events_chatmsg_unique;
CREATE INDEX IF NOT EXISTS idx_events_timestamp ON daz_core_events (timestamp);
CREATE INDEX IF NOT EXISTS idx_events_channel_type ON daz_core_events (channel_name, event_type);
CREATE INDEX IF NOT EXISTS idx_events_username ON daz_core_events (username);
CREATE INDEX IF NOT EXISTS idx_events_to_user ON daz_core_events (to_user);

CREATE TABLE IF NOT EXISTS daz_chat_log (
    id         BIGSERIAL PRIMARY KEY,
    username   VARCHAR(100) NOT NULL,
    message    TEXT         NOT NULL,
    user_rank  INTEGER,
    user_id    VARCHAR(100),
    channel    VARCHAR(100) NOT NULL,
    timestamp  TIMESTAMP    NOT NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_chat_channel ON daz_chat_log (channel);
CREATE INDEX IF NOT EXISTS idx_chat_username ON daz_chat_log (username);
CREATE INDEX IF NOT EXISTS idx_chat_timestamp ON daz_chat_log (timestamp);

CREATE TABLE IF NOT EXISTS daz_user_activity (
    id         BIGSERIAL PRIMARY KEY,
    event_type VARCHAR(50)  NOT NULL,
    username   VARCHAR(100) NOT NULL,
    user_rank  INTEGER,
    channel    VARCHAR(100) NOT NULL,
    timestamp  TIMESTAMP    NOT NULL,
    raw_data   JSONB,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_user_activity_event ON daz_user_activity (event_type);
CREATE INDEX IF NOT EXISTS idx_user_activity_channel ON daz_user_activity (channel);
CREATE INDEX IF NOT EXISTS idx_user_activity_username ON daz_user_activity (username);

CREATE TABLE IF NOT EXISTS daz_plugin_logs (
    id          BIGSERIAL PRIMARY KEY,
    plugin_name VARCHAR(100) NOT NULL,
    event_type  VARCHAR(100) NOT NULL,
    log_data    JSONB        NOT NULL,
    timestamp   TIMESTAMP    NOT NULL,
    created_at  TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_plugin_logs_plugin ON daz_plugin_logs (plugin_name);
CREATE INDEX IF NOT EXISTS idx_plugin_logs_event ON daz_plugin_logs (event_type);
CREATE INDEX IF NOT EXISTS idx_plugin_logs_timestamp ON daz_plugin_logs (timestamp);

CREATE TABLE IF NOT EXISTS daz_private_messages (
    id           BIGSERIAL PRIMARY KEY,
    event_type   VARCHAR(50)  NOT NULL,
    from_user    VARCHAR(100) NOT NULL,
    to_user      VARCHAR(100) NOT NULL,
    message      TEXT         NOT NULL,
    channel      VARCHAR(100) NOT NULL,
    message_time BIGINT       NOT NULL,
    timestamp    TIMESTAMP    NOT NULL,
    created_at   TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_pm_users ON daz_private_messages (from_user, to_user);
CREATE INDEX IF NOT EXISTS idx_pm_channel ON daz_private_messages (channel);
CREATE INDEX IF NOT EXISTS idx_pm_time ON daz_private_messages (message_time);
CREATE INDEX IF NOT EXISTS idx_pm_timestamp ON daz_private_messages (timestamp);

-- The same idempotency key for the side tables the event logger may fill (same rules as above).
ALTER TABLE daz_chat_log ADD COLUMN IF NOT EXISTS event_uid UUID;
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_chat_event_uid ON daz_chat_log (event_uid);
ALTER TABLE daz_user_activity ADD COLUMN IF NOT EXISTS event_uid UUID;
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_user_activity_event_uid ON daz_user_activity (event_uid);
ALTER TABLE daz_private_messages ADD COLUMN IF NOT EXISTS event_uid UUID;
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_pm_event_uid ON daz_private_messages (event_uid);

-- Lookups by person and by time (the user page, !seen-style history, the chat and PM pages) go
-- by channel, lower(username) and newest first; the Go indexes on plain username cannot serve
-- lower(username), so such a page read every row of the channel.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_chat_channel_user_time
    ON daz_chat_log (channel, lower(username), timestamp DESC, id DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_chat_channel_time
    ON daz_chat_log (channel, timestamp DESC, id DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_pm_channel_time
    ON daz_private_messages (channel, timestamp DESC, id DESC);
-- Retention deletes old mediaUpdate events in batches, oldest first (daz/db/retention.py).
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_events_media_update_time
    ON daz_core_events (timestamp) WHERE event_type = 'cytube.event.mediaUpdate';

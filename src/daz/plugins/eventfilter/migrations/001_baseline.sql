-- eventfilter: routing rules, the command registry mirror, and the command audit log.
-- Go names and types; re-runnable on a Go-created database.

CREATE TABLE IF NOT EXISTS daz_eventfilter_rules (
    id            SERIAL PRIMARY KEY,
    event_type    VARCHAR(255) NOT NULL,
    target_plugin VARCHAR(255) NOT NULL,
    conditions    JSONB,
    priority      INTEGER DEFAULT 0,
    enabled       BOOLEAN DEFAULT true,
    created_at    TIMESTAMP DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_event_type ON daz_eventfilter_rules (event_type);

CREATE TABLE IF NOT EXISTS daz_eventfilter_commands (
    id              SERIAL PRIMARY KEY,
    command         VARCHAR(100) NOT NULL UNIQUE,
    plugin_name     VARCHAR(100) NOT NULL,
    is_alias        BOOLEAN DEFAULT false,
    primary_command VARCHAR(100),
    min_rank        INTEGER DEFAULT 0,
    enabled         BOOLEAN DEFAULT true,
    admin_only      BOOLEAN DEFAULT false,
    description     TEXT,
    created_at      TIMESTAMP DEFAULT now()
);
-- Go added these by ALTER (and Go's 033 added description again): older tables lack them.
ALTER TABLE daz_eventfilter_commands ADD COLUMN IF NOT EXISTS admin_only BOOLEAN DEFAULT false;
ALTER TABLE daz_eventfilter_commands ADD COLUMN IF NOT EXISTS description TEXT;

CREATE TABLE IF NOT EXISTS daz_eventfilter_history (
    id            BIGSERIAL PRIMARY KEY,
    command       VARCHAR(100) NOT NULL,
    username      VARCHAR(255) NOT NULL,
    channel       VARCHAR(255) NOT NULL,
    args          TEXT[],
    executed_at   TIMESTAMP DEFAULT now(),
    success       BOOLEAN DEFAULT true,
    error_message TEXT
);
CREATE INDEX IF NOT EXISTS idx_eventfilter_history_time ON daz_eventfilter_history (executed_at);
CREATE INDEX IF NOT EXISTS idx_eventfilter_history_user
    ON daz_eventfilter_history (username, executed_at);

-- daz only: ids of the history batches already written. Inserted in the same transaction as a
-- batch's rows, so a batch retried after a commit whose reply was lost is not written twice.
-- Rows older than a week are deleted by the plugin.
CREATE TABLE IF NOT EXISTS daz_eventfilter_history_batches (
    batch_id   UUID PRIMARY KEY,
    written_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_eventfilter_history_batches_time
    ON daz_eventfilter_history_batches (written_at);

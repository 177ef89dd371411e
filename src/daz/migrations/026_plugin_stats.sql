-- 026: per-plugin lifetime counters. 025 creates the same table when it runs first; this file
-- makes sure every column exists and seeds the Go plugin names.

CREATE TABLE IF NOT EXISTS daz_plugin_stats (
    plugin_name       VARCHAR(100) PRIMARY KEY,
    events_processed  BIGINT DEFAULT 0,
    events_failed     BIGINT DEFAULT 0,
    retries_scheduled BIGINT DEFAULT 0,
    retries_succeeded BIGINT DEFAULT 0,
    retries_failed    BIGINT DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER TABLE daz_plugin_stats ADD COLUMN IF NOT EXISTS events_processed BIGINT DEFAULT 0;
ALTER TABLE daz_plugin_stats ADD COLUMN IF NOT EXISTS events_failed BIGINT DEFAULT 0;
ALTER TABLE daz_plugin_stats ADD COLUMN IF NOT EXISTS retries_scheduled BIGINT DEFAULT 0;
ALTER TABLE daz_plugin_stats ADD COLUMN IF NOT EXISTS retries_succeeded BIGINT DEFAULT 0;
ALTER TABLE daz_plugin_stats ADD COLUMN IF NOT EXISTS retries_failed BIGINT DEFAULT 0;

INSERT INTO daz_plugin_stats (plugin_name)
VALUES ('retry'), ('sql'), ('eventfilter'), ('usertracker'), ('mediatracker'), ('analytics'),
       ('about'), ('help'), ('uptime'), ('debug')
ON CONFLICT (plugin_name) DO NOTHING;

DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'daz_user') THEN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_user
                       AND (rolsuper OR rolcreaterole)) THEN
            RAISE WARNING 'role daz_user does not exist and % may not create it; grants skipped',
                current_user;
            RETURN;
        END IF;
        BEGIN
            CREATE ROLE daz_user NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    GRANT SELECT, INSERT, UPDATE, DELETE ON daz_plugin_stats TO daz_user;
END
$do$;

-- 025: the persistent retry queue (daz_retry_queue), its stats view, claim/complete/fail/cleanup
-- functions, and the trigger that counts retries per plugin in daz_plugin_stats.
-- Safe to run again and again, alone or in order with the other files (Go's 025 was neither).

-- The stats trigger below writes to daz_plugin_stats. Go's 025 only ALTERed that table and
-- relied on 026 (which sorts after it) to create it, so 025 failed on an empty database.
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
ALTER TABLE daz_plugin_stats ADD COLUMN IF NOT EXISTS retries_scheduled BIGINT DEFAULT 0;
ALTER TABLE daz_plugin_stats ADD COLUMN IF NOT EXISTS retries_succeeded BIGINT DEFAULT 0;
ALTER TABLE daz_plugin_stats ADD COLUMN IF NOT EXISTS retries_failed BIGINT DEFAULT 0;

CREATE TABLE IF NOT EXISTS daz_retry_queue (
    id              BIGSERIAL PRIMARY KEY,
    correlation_id  VARCHAR(255) NOT NULL UNIQUE,
    plugin_name     VARCHAR(100) NOT NULL,
    operation_type  VARCHAR(100) NOT NULL,
    event_type      VARCHAR(255) NOT NULL,
    event_data      JSONB        NOT NULL,
    max_retries     INTEGER      NOT NULL DEFAULT 3,
    retry_count     INTEGER      NOT NULL DEFAULT 0,
    retry_after     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    created_at      TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ  NOT NULL DEFAULT now(),
    last_error      TEXT,
    status          VARCHAR(50)  NOT NULL DEFAULT 'pending',
    priority        INTEGER      NOT NULL DEFAULT 0,
    timeout_seconds INTEGER      NOT NULL DEFAULT 30,
    CONSTRAINT valid_status
        CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'dead_letter'))
);
-- Go had no default here; "due now" is the only sensible one for a hand-made row.
ALTER TABLE daz_retry_queue ALTER COLUMN retry_after SET DEFAULT now();

CREATE INDEX IF NOT EXISTS idx_retry_queue_status_retry_after
    ON daz_retry_queue (status, retry_after) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS idx_retry_queue_plugin_name ON daz_retry_queue (plugin_name);
CREATE INDEX IF NOT EXISTS idx_retry_queue_operation_type ON daz_retry_queue (operation_type);
CREATE INDEX IF NOT EXISTS idx_retry_queue_created_at ON daz_retry_queue (created_at);
-- Finding claims abandoned by a crashed process must not scan the finished rows.
CREATE INDEX IF NOT EXISTS idx_retry_queue_processing
    ON daz_retry_queue (updated_at) WHERE status = 'processing';

-- Claim due work. Several daz processes may call this at once: SKIP LOCKED means a row locked
-- by one caller is skipped by the others, never handed out twice. A row still 'processing'
-- after its own timeout_seconds was abandoned (the process died mid-attempt): that attempt
-- counts, and the row is claimable again, or dead-lettered when it was the last attempt.
CREATE OR REPLACE FUNCTION acquire_retry_batch(batch_size integer)
RETURNS TABLE(id bigint, correlation_id varchar, plugin_name varchar, operation_type varchar,
              event_type varchar, event_data jsonb, max_retries integer, retry_count integer,
              retry_after timestamptz, created_at timestamptz, updated_at timestamptz,
              last_error text, status varchar, priority integer, timeout_seconds integer)
LANGUAGE sql VOLATILE AS $fn$
    WITH stuck AS (
        SELECT s.id FROM daz_retry_queue s
        WHERE s.status = 'processing'
          AND s.updated_at < now() - make_interval(secs => s.timeout_seconds)
        ORDER BY s.updated_at
        LIMIT greatest(batch_size, 1)
        FOR UPDATE SKIP LOCKED
    )
    UPDATE daz_retry_queue r
    SET retry_count = r.retry_count + 1,
        status = CASE WHEN r.retry_count + 1 >= r.max_retries THEN 'dead_letter' ELSE 'pending' END,
        retry_after = now(),
        last_error = concat_ws(' ', r.last_error,
                               format('[attempt %s abandoned: still processing after %s s]',
                                      r.retry_count + 1, r.timeout_seconds)),
        updated_at = now()
    FROM stuck WHERE r.id = stuck.id;

    WITH due AS (
        SELECT d.id FROM daz_retry_queue d
        WHERE d.status = 'pending' AND d.retry_after <= now()
        ORDER BY d.priority DESC, d.retry_after ASC
        LIMIT greatest(batch_size, 0)
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE daz_retry_queue r SET status = 'processing', updated_at = now()
        FROM due WHERE r.id = due.id
        RETURNING r.id, r.correlation_id, r.plugin_name, r.operation_type, r.event_type,
                  r.event_data, r.max_retries, r.retry_count, r.retry_after, r.created_at,
                  r.updated_at, r.last_error, r.status, r.priority, r.timeout_seconds
    )
    SELECT * FROM claimed ORDER BY claimed.priority DESC, claimed.retry_after ASC;
$fn$;

CREATE OR REPLACE FUNCTION complete_retry(retry_id bigint)
RETURNS void LANGUAGE sql VOLATILE AS $fn$
    UPDATE daz_retry_queue SET status = 'completed', updated_at = now()
    WHERE id = retry_id AND status <> 'completed';
$fn$;

-- Go's fail_retry(bigint, text) ended a row for good after a single failure. This one records
-- a failed attempt: back off (exponential, capped, with jitter so a burst of failures does not
-- come back in lock step) or, after max_retries attempts, park the row as dead_letter.
-- The old two-argument form must go, or two-argument calls would be ambiguous.
DROP FUNCTION IF EXISTS fail_retry(bigint, text);
CREATE OR REPLACE FUNCTION fail_retry(retry_id bigint, error_msg text,
                                      base_delay_seconds double precision DEFAULT 5,
                                      max_delay_seconds double precision DEFAULT 300,
                                      backoff_multiplier double precision DEFAULT 2,
                                      jitter double precision DEFAULT 0.2)
RETURNS varchar LANGUAGE sql VOLATILE AS $fn$
    UPDATE daz_retry_queue r
    SET retry_count = r.retry_count + 1,
        last_error = error_msg,
        updated_at = now(),
        status = CASE WHEN r.retry_count + 1 >= r.max_retries THEN 'dead_letter' ELSE 'pending' END,
        retry_after = CASE
            WHEN r.retry_count + 1 >= r.max_retries THEN r.retry_after
            ELSE now() + make_interval(secs => greatest(0.0,
                     least(base_delay_seconds
                           * power(greatest(backoff_multiplier, 1.0), least(r.retry_count, 60)),
                           max_delay_seconds)
                     * (1.0 + least(greatest(jitter, 0.0), 1.0) * (2.0 * random() - 1.0))))
        END
    WHERE r.id = retry_id AND r.status IN ('pending', 'processing')
    RETURNING r.status;
$fn$;

CREATE OR REPLACE FUNCTION cleanup_old_retries(retention_days integer DEFAULT 7)
RETURNS integer LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    removed integer;
BEGIN
    DELETE FROM daz_retry_queue
    WHERE status IN ('completed', 'failed', 'dead_letter')
      AND updated_at < now() - make_interval(days => retention_days);
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END
$fn$;

-- Upserts, where Go did plain UPDATEs that silently counted nothing for a plugin without a
-- seeded stats row.
CREATE OR REPLACE FUNCTION update_retry_stats()
RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO daz_plugin_stats AS s (plugin_name, retries_scheduled)
        VALUES (NEW.plugin_name, 1)
        ON CONFLICT (plugin_name) DO UPDATE
        SET retries_scheduled = coalesce(s.retries_scheduled, 0) + 1, updated_at = now();
    ELSIF TG_OP = 'UPDATE' AND NEW.status IS DISTINCT FROM OLD.status THEN
        IF NEW.status = 'completed' THEN
            INSERT INTO daz_plugin_stats AS s (plugin_name, retries_succeeded)
            VALUES (NEW.plugin_name, 1)
            ON CONFLICT (plugin_name) DO UPDATE
            SET retries_succeeded = coalesce(s.retries_succeeded, 0) + 1, updated_at = now();
        ELSIF NEW.status IN ('failed', 'dead_letter') THEN
            INSERT INTO daz_plugin_stats AS s (plugin_name, retries_failed)
            VALUES (NEW.plugin_name, 1)
            ON CONFLICT (plugin_name) DO UPDATE
            SET retries_failed = coalesce(s.retries_failed, 0) + 1, updated_at = now();
        END IF;
    END IF;
    RETURN NULL;
END
$fn$;

-- CREATE TRIGGER has no IF NOT EXISTS before PostgreSQL 14 (Go's 025 failed on a re-run).
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                   WHERE tgname = 'update_retry_stats_trigger'
                     AND tgrelid = 'daz_retry_queue'::regclass) THEN
        CREATE TRIGGER update_retry_stats_trigger
            AFTER INSERT OR UPDATE ON daz_retry_queue
            FOR EACH ROW EXECUTE FUNCTION update_retry_stats();
    END IF;
END
$do$;

-- A view holds no data; recreating it is the one way to stay valid whatever shape it had.
DROP VIEW IF EXISTS daz_retry_queue_stats;
CREATE VIEW daz_retry_queue_stats AS
SELECT plugin_name,
       operation_type,
       status,
       count(*)         AS count,
       avg(retry_count) AS avg_retry_count,
       max(retry_count) AS max_retry_count,
       min(created_at)  AS oldest_entry,
       max(updated_at)  AS latest_update
FROM daz_retry_queue
GROUP BY plugin_name, operation_type, status;

-- daz_user: PRE-REQS creates it; a missing role must not make this file fail (Go's did).
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
            NULL;  -- another session created it meanwhile
        END;
    END IF;
    GRANT SELECT, INSERT, UPDATE, DELETE ON daz_retry_queue, daz_plugin_stats TO daz_user;
    GRANT USAGE, SELECT ON SEQUENCE daz_retry_queue_id_seq TO daz_user;
    GRANT SELECT ON daz_retry_queue_stats TO daz_user;
    GRANT EXECUTE ON FUNCTION acquire_retry_batch(integer), complete_retry(bigint),
        fail_retry(bigint, text, double precision, double precision, double precision,
                   double precision),
        cleanup_old_retries(integer) TO daz_user;
END
$do$;

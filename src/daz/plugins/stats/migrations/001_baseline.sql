-- stats: what daz adds to the Go table daz_plugin_stats (created by scripts/sql/026, applied
-- before plugin schemas). Re-runnable.

-- Lifetime seconds spent handling events; with events_processed it gives the average handling
-- time. The Go table had no timing column.
ALTER TABLE daz_plugin_stats ADD COLUMN IF NOT EXISTS handle_seconds DOUBLE PRECISION DEFAULT 0;

-- daz only: the totals each daz process (run) last wrote. A write stores the run's absolute
-- totals here and adds only the difference to daz_plugin_stats, in one transaction; so a write
-- retried after a commit whose reply was lost adds nothing twice. Old runs are deleted by the
-- plugin.
CREATE TABLE IF NOT EXISTS daz_plugin_stats_runs (
    run_id           UUID         NOT NULL,
    plugin_name      VARCHAR(100) NOT NULL,
    events_processed BIGINT           NOT NULL DEFAULT 0,
    events_failed    BIGINT           NOT NULL DEFAULT 0,
    handle_seconds   DOUBLE PRECISION NOT NULL DEFAULT 0,
    updated_at       TIMESTAMPTZ      NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, plugin_name)
);

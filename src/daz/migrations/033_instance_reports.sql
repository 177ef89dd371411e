-- What each instance says about itself (its rooms' states, plugins, database, what is queued or
-- spilled: the body of its GET /status), rewritten every few seconds with its heartbeat, so
-- `daz status` can print every instance from the database alone (docs/scale-out.md). A row of
-- an instance that died keeps its last report; seen_at says how old it is.
ALTER TABLE daz_instances ADD COLUMN report jsonb;
ALTER TABLE daz_instances ADD COLUMN report_at timestamptz;

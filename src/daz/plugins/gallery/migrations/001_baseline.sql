-- gallery: daz's indexes on the Go tables (scripts/sql/027-030 create them; this file runs after).
-- CONCURRENTLY: built outside the transaction without stopping writers (daz/db/online.py).

-- The channel page, a page at a time, newest first; with the name, so finding page N of 100 k
-- images and counting them (locked names left out) never reads the table itself.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_gallery_channel_state_posted
    ON daz_gallery_images (channel, state, posted_at DESC, id DESC) INCLUDE (username);
-- A person's page: names match ignoring case, which the Go (username, ...) indexes cannot serve.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_gallery_channel_user_posted
    ON daz_gallery_images (channel, lower(username), state, posted_at DESC, id DESC);
-- Retention deletes health-check rows by age (daz/db/retention.py).
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_gallery_health_time
    ON daz_gallery_health_log (check_time);

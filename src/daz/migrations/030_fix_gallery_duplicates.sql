-- 030: one row per (user, URL) across channels. A database that went through Go's 027 alone
-- keyed images on (username, url, channel) and may hold the same URL for a user in several
-- channels; those rows are merged into one (health history re-pointed, earliest post kept)
-- before the per-user key is enforced. One DO block, so `psql -f` runs it atomically too.

DO $do$
BEGIN
    DROP TABLE IF EXISTS pg_temp.daz_gallery_dupes;
    CREATE TEMP TABLE daz_gallery_dupes ON COMMIT DROP AS
    SELECT id, first_value(id) OVER w AS keep_id, username, channel
    FROM daz_gallery_images
    WHERE (username, url) IN (SELECT username, url FROM daz_gallery_images
                              GROUP BY username, url HAVING count(*) > 1)
    WINDOW w AS (PARTITION BY username, url
                 ORDER BY (state = 'active') DESC, posted_at DESC, id ASC);

    IF EXISTS (SELECT 1 FROM daz_gallery_dupes) THEN
        UPDATE daz_gallery_images k
        SET original_posted_at = m.first_posted, updated_at = now()
        FROM (SELECT d.keep_id, min(coalesce(i.original_posted_at, i.posted_at)) AS first_posted
              FROM daz_gallery_dupes d JOIN daz_gallery_images i ON i.id = d.id
              GROUP BY d.keep_id) m
        WHERE k.id = m.keep_id AND k.original_posted_at IS DISTINCT FROM m.first_posted;

        UPDATE daz_gallery_health_log h SET image_id = d.keep_id
        FROM daz_gallery_dupes d WHERE h.image_id = d.id AND d.id <> d.keep_id;

        DELETE FROM daz_gallery_images i USING daz_gallery_dupes d
        WHERE i.id = d.id AND d.id <> d.keep_id;

        PERFORM daz_gallery_refresh_stats(t.username, t.channel)
        FROM (SELECT DISTINCT username, channel FROM daz_gallery_dupes) t;
        RAISE NOTICE 'merged % duplicate gallery rows',
            (SELECT count(*) FROM daz_gallery_dupes WHERE id <> keep_id);
    END IF;
    DROP TABLE pg_temp.daz_gallery_dupes;

    -- Older keys that allowed the duplicates (027's, and one a hand-made Go schema had).
    ALTER TABLE daz_gallery_images DROP CONSTRAINT IF EXISTS unique_user_channel_image;
    ALTER TABLE daz_gallery_images DROP CONSTRAINT IF EXISTS daz_gallery_images_url_channel_key;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conname = 'daz_gallery_images_username_url_key'
                     AND conrelid = 'daz_gallery_images'::regclass) THEN
        ALTER TABLE daz_gallery_images ADD CONSTRAINT daz_gallery_images_username_url_key
            UNIQUE (username, url);
    END IF;
END
$do$;
-- Go's 030 also made idx_gallery_username_url (username, url): an exact copy of the unique
-- index above that only slows writes, so it is not created here (an existing one is kept).

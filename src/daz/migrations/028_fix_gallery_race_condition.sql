-- 028: Go's "race condition" fix redefined add_gallery_image with a per-(user, channel) lock
-- and an ON CONFLICT target no constraint matched, and re-running it reverted a later fix.
-- add_gallery_image now has exactly one definition (027), with the per-user lock; this file
-- only keeps the index Go's 028 added for the "active images of a user in a channel" reads.

CREATE INDEX IF NOT EXISTS idx_gallery_user_channel_active
    ON daz_gallery_images (username, channel, is_active) WHERE is_active = true;

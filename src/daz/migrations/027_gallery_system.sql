-- 027: the image gallery: images, per-channel locks, per-channel stats, health-check log, the
-- gallery view, and add_gallery_image. Health-check functions are in 029.
--
-- Beyond the Go columns, an image has an explicit lifecycle `state`:
--   active  shown in the gallery                         (is_active = true)
--   pruned  pushed out by the per-user size limit        (is_active = false)
--   dead    failed its health checks                     (is_active = false)
-- is_active is kept for Go-era readers and writers; a trigger keeps the two consistent
-- whichever one a writer changes. 5xx answers are counted apart (server_error_count) with their
-- own backoff: a flaky host must not kill images, nor be hammered.

CREATE TABLE IF NOT EXISTS daz_gallery_images (
    id                 BIGSERIAL PRIMARY KEY,
    username           VARCHAR(255) NOT NULL,
    url                TEXT         NOT NULL,
    channel            VARCHAR(255) NOT NULL,
    posted_at          TIMESTAMPTZ  NOT NULL DEFAULT now(),
    created_at         TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ  NOT NULL DEFAULT now(),
    is_active          BOOLEAN DEFAULT true,
    failure_count      INTEGER DEFAULT 0,
    first_failure_at   TIMESTAMPTZ,
    last_check_at      TIMESTAMPTZ,
    next_check_at      TIMESTAMPTZ,
    pruned_reason      TEXT,
    original_poster    VARCHAR(255),
    original_posted_at TIMESTAMPTZ,
    most_recent_poster VARCHAR(255),
    image_title        TEXT,
    image_width        INTEGER,
    image_height       INTEGER,
    file_size          BIGINT,
    -- One row per (user, URL) whatever the channel: the gallery is per user (Go's 030 key).
    CONSTRAINT daz_gallery_images_username_url_key UNIQUE (username, url)
);
-- Columns Go's 027 added over time (an early table may lack them).
ALTER TABLE daz_gallery_images ADD COLUMN IF NOT EXISTS original_poster VARCHAR(255);
ALTER TABLE daz_gallery_images ADD COLUMN IF NOT EXISTS original_posted_at TIMESTAMPTZ;
ALTER TABLE daz_gallery_images ADD COLUMN IF NOT EXISTS most_recent_poster VARCHAR(255);
ALTER TABLE daz_gallery_images ADD COLUMN IF NOT EXISTS image_title TEXT;
ALTER TABLE daz_gallery_images ADD COLUMN IF NOT EXISTS image_width INTEGER;
ALTER TABLE daz_gallery_images ADD COLUMN IF NOT EXISTS image_height INTEGER;
ALTER TABLE daz_gallery_images ADD COLUMN IF NOT EXISTS file_size BIGINT;
ALTER TABLE daz_gallery_images ADD COLUMN IF NOT EXISTS state VARCHAR(10) NOT NULL DEFAULT 'active';
ALTER TABLE daz_gallery_images ADD COLUMN IF NOT EXISTS server_error_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE daz_gallery_images ADD COLUMN IF NOT EXISTS last_status_code INTEGER;

-- Existing rows: derive the state from the Go flags. Size-limit prunes are recognisable by
-- their reason text; any other inactive row died in health checks.
UPDATE daz_gallery_images
SET state = CASE
        WHEN coalesce(is_active, false) THEN 'active'
        WHEN pruned_reason LIKE 'Gallery limit%' THEN 'pruned'
        ELSE 'dead' END,
    is_active = coalesce(is_active, false)
WHERE (state = 'active') IS DISTINCT FROM coalesce(is_active, false) OR is_active IS NULL;

DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'daz_gallery_images_state_check'
                   AND conrelid = 'daz_gallery_images'::regclass) THEN
        ALTER TABLE daz_gallery_images ADD CONSTRAINT daz_gallery_images_state_check
            CHECK (state IN ('active', 'pruned', 'dead'));
    END IF;
END
$do$;

CREATE OR REPLACE FUNCTION daz_gallery_sync_state()
RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.state = 'active' AND NEW.is_active IS FALSE THEN
            NEW.state := CASE WHEN NEW.pruned_reason LIKE 'Gallery limit%' THEN 'pruned'
                              ELSE 'dead' END;
        END IF;
    ELSIF NEW.state IS DISTINCT FROM OLD.state THEN
        NULL;  -- a new-style writer: state wins, is_active follows below
    ELSIF NEW.is_active IS DISTINCT FROM OLD.is_active THEN
        -- a Go-style writer flipped the flag
        NEW.state := CASE
            WHEN coalesce(NEW.is_active, false) THEN 'active'
            WHEN NEW.pruned_reason LIKE 'Gallery limit%' THEN 'pruned'
            ELSE 'dead' END;
    END IF;
    NEW.is_active := (NEW.state = 'active');
    RETURN NEW;
END
$fn$;

DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'daz_gallery_images_sync_state'
                   AND tgrelid = 'daz_gallery_images'::regclass) THEN
        CREATE TRIGGER daz_gallery_images_sync_state
            BEFORE INSERT OR UPDATE ON daz_gallery_images
            FOR EACH ROW EXECUTE FUNCTION daz_gallery_sync_state();
    END IF;
END
$do$;

CREATE INDEX IF NOT EXISTS idx_gallery_username ON daz_gallery_images (username);
CREATE INDEX IF NOT EXISTS idx_gallery_channel ON daz_gallery_images (channel);
CREATE INDEX IF NOT EXISTS idx_gallery_active ON daz_gallery_images (is_active);
CREATE INDEX IF NOT EXISTS idx_gallery_next_check ON daz_gallery_images (next_check_at)
    WHERE is_active = false;
CREATE INDEX IF NOT EXISTS idx_gallery_posted ON daz_gallery_images (posted_at DESC);
CREATE INDEX IF NOT EXISTS idx_gallery_original_poster ON daz_gallery_images (original_poster)
    WHERE original_poster IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_gallery_user_state ON daz_gallery_images (username, state, posted_at);

-- Locks are per (user, channel). Go put the primary key on username alone, so locking a
-- second channel failed; the key moves to (username, channel), rows untouched.
CREATE TABLE IF NOT EXISTS daz_gallery_locks (
    username   VARCHAR(255) NOT NULL,
    channel    VARCHAR(255) NOT NULL,
    is_locked  BOOLEAN DEFAULT false,
    locked_at  TIMESTAMPTZ,
    locked_by  VARCHAR(255),
    created_at TIMESTAMPTZ DEFAULT now(),
    updated_at TIMESTAMPTZ DEFAULT now(),
    CONSTRAINT daz_gallery_locks_pkey PRIMARY KEY (username, channel),
    CONSTRAINT unique_user_channel_lock UNIQUE (username, channel)
);
DO $do$
DECLARE
    pk_columns int;
BEGIN
    SELECT array_length(conkey, 1) INTO pk_columns FROM pg_constraint
    WHERE conrelid = 'daz_gallery_locks'::regclass AND contype = 'p';
    IF pk_columns IS DISTINCT FROM 2 THEN
        IF pk_columns IS NOT NULL THEN
            EXECUTE (SELECT format('ALTER TABLE daz_gallery_locks DROP CONSTRAINT %I', conname)
                     FROM pg_constraint
                     WHERE conrelid = 'daz_gallery_locks'::regclass AND contype = 'p');
        END IF;
        ALTER TABLE daz_gallery_locks ADD CONSTRAINT daz_gallery_locks_pkey
            PRIMARY KEY (username, channel);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'unique_user_channel_lock'
                   AND conrelid = 'daz_gallery_locks'::regclass) THEN
        ALTER TABLE daz_gallery_locks ADD CONSTRAINT unique_user_channel_lock
            UNIQUE (username, channel);
    END IF;
END
$do$;
CREATE INDEX IF NOT EXISTS idx_gallery_locks_channel ON daz_gallery_locks (channel);

CREATE TABLE IF NOT EXISTS daz_gallery_stats (
    id            BIGSERIAL PRIMARY KEY,
    username      VARCHAR(255) NOT NULL,
    channel       VARCHAR(255) NOT NULL,
    total_images  INTEGER DEFAULT 0,
    active_images INTEGER DEFAULT 0,
    dead_images   INTEGER DEFAULT 0,
    images_shared INTEGER DEFAULT 0,
    last_post_at  TIMESTAMPTZ,
    gallery_views INTEGER DEFAULT 0,
    created_at    TIMESTAMPTZ DEFAULT now(),
    updated_at    TIMESTAMPTZ DEFAULT now(),
    CONSTRAINT unique_user_channel_stats UNIQUE (username, channel)
);

CREATE TABLE IF NOT EXISTS daz_gallery_health_log (
    id               BIGSERIAL PRIMARY KEY,
    image_id         BIGINT REFERENCES daz_gallery_images (id) ON DELETE CASCADE,
    check_time       TIMESTAMPTZ DEFAULT now(),
    status_code      INTEGER,
    response_time_ms INTEGER,
    error_message    TEXT,
    previous_status  BOOLEAN,
    new_status       BOOLEAN
);
CREATE INDEX IF NOT EXISTS idx_gallery_health_image
    ON daz_gallery_health_log (image_id, check_time DESC);

-- Recount one (user, channel) stats row from the images themselves (Go adjusted counters in
-- place and let them drift, e.g. after a cross-channel prune).
CREATE OR REPLACE FUNCTION daz_gallery_refresh_stats(p_username varchar, p_channel varchar,
                                                     p_new_images integer DEFAULT 0,
                                                     p_posted boolean DEFAULT false)
RETURNS void LANGUAGE sql VOLATILE AS $fn$
    INSERT INTO daz_gallery_stats AS s (username, channel, total_images, active_images,
                                        dead_images, last_post_at)
    SELECT p_username, p_channel, greatest(p_new_images, 0),
           count(*) FILTER (WHERE i.state = 'active'),
           count(*) FILTER (WHERE i.state = 'dead'),
           CASE WHEN p_posted THEN now() END
    FROM daz_gallery_images i WHERE i.username = p_username AND i.channel = p_channel
    ON CONFLICT (username, channel) DO UPDATE
    SET total_images = coalesce(s.total_images, 0) + greatest(p_new_images, 0),
        active_images = EXCLUDED.active_images,
        dead_images = EXCLUDED.dead_images,
        last_post_at = CASE WHEN p_posted THEN now() ELSE s.last_post_at END,
        updated_at = now();
$fn$;

-- Add (or re-post) an image and keep the user within p_max_images active images across all
-- channels. Same advisory-lock key as Go, so a Go and a Python writer serialise per user too.
--   * URL already active: returned as is.
--   * URL pruned or dead: reactivated (a re-post is a fresh post), never a second row.
--   * Over the limit afterwards: the user's oldest other active images are pruned, with a
--     reason naming the limit actually applied.
-- Conflicts resolve through ON CONFLICT (username, url), the key Go's readiness check expects.
CREATE OR REPLACE FUNCTION add_gallery_image(p_username varchar, p_url text, p_channel varchar,
                                             p_title text DEFAULT NULL,
                                             p_max_images integer DEFAULT 25)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_max   integer := greatest(coalesce(p_max_images, 25), 1);
    v_id    bigint;
    v_state varchar;
    v_new   boolean := false;
    v_touched varchar[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('gallery_' || p_username)::bigint);

    SELECT id, state INTO v_id, v_state FROM daz_gallery_images
    WHERE username = p_username AND url = p_url FOR UPDATE;
    IF v_id IS NOT NULL AND v_state = 'active' THEN
        RETURN v_id;
    END IF;

    IF v_id IS NULL THEN
        INSERT INTO daz_gallery_images AS g (username, url, channel, posted_at, created_at,
                                             updated_at, state, is_active, image_title,
                                             original_poster, original_posted_at,
                                             most_recent_poster)
        VALUES (p_username, p_url, p_channel, now(), now(), now(), 'active', true, p_title,
                p_username, now(), p_username)
        ON CONFLICT (username, url) DO NOTHING
        RETURNING g.id INTO v_id;
        v_new := v_id IS NOT NULL;
        IF NOT v_new THEN  -- a writer that skipped the lock got there first
            SELECT id INTO v_id FROM daz_gallery_images
            WHERE username = p_username AND url = p_url FOR UPDATE;
        END IF;
    END IF;
    IF NOT v_new THEN
        UPDATE daz_gallery_images
        SET state = 'active', posted_at = now(), updated_at = now(), pruned_reason = NULL,
            failure_count = 0, first_failure_at = NULL, next_check_at = NULL,
            last_check_at = NULL, server_error_count = 0, most_recent_poster = p_username,
            image_title = coalesce(p_title, image_title)
        WHERE id = v_id AND state <> 'active';
    END IF;

    WITH ranked AS (
        SELECT id, channel,
               row_number() OVER (ORDER BY (id = v_id) DESC, posted_at DESC, id DESC) AS n
        FROM daz_gallery_images WHERE username = p_username AND state = 'active'
    ), pruned AS (
        UPDATE daz_gallery_images g
        SET state = 'pruned', updated_at = now(), next_check_at = NULL,
            pruned_reason = format('Gallery limit (%s images) reached', v_max)
        FROM ranked WHERE g.id = ranked.id AND ranked.n > v_max
        RETURNING g.channel
    )
    SELECT array_agg(DISTINCT channel) INTO v_touched FROM pruned;

    PERFORM daz_gallery_refresh_stats(p_username, p_channel, CASE WHEN v_new THEN 1 ELSE 0 END,
                                      true);
    PERFORM daz_gallery_refresh_stats(p_username, c)
    FROM (SELECT DISTINCT unnest(v_touched) AS c
          UNION SELECT channel FROM daz_gallery_images WHERE id = v_id) t
    WHERE c <> p_channel;
    RETURN v_id;
END
$fn$;

-- A view holds no data; recreating it keeps it valid whatever shape an older one had.
DROP VIEW IF EXISTS daz_gallery_view;
CREATE VIEW daz_gallery_view AS
SELECT i.id, i.username, i.url, i.channel, i.posted_at, i.image_title, i.is_active,
       i.original_poster,
       CASE WHEN i.original_poster IS NOT NULL AND i.original_poster <> i.username
            THEN i.original_poster END AS shared_from,
       coalesce(l.is_locked, false) AS is_locked,
       s.total_images, s.active_images,
       i.state
FROM daz_gallery_images i
LEFT JOIN daz_gallery_locks l ON l.username = i.username AND l.channel = i.channel
LEFT JOIN daz_gallery_stats s ON s.username = i.username AND s.channel = i.channel
WHERE i.state = 'active'
ORDER BY i.posted_at DESC;

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
    GRANT SELECT, INSERT, UPDATE, DELETE
        ON daz_gallery_images, daz_gallery_locks, daz_gallery_stats TO daz_user;
    GRANT SELECT, INSERT ON daz_gallery_health_log TO daz_user;
    GRANT SELECT ON daz_gallery_view TO daz_user;
    GRANT USAGE, SELECT ON SEQUENCE daz_gallery_images_id_seq, daz_gallery_stats_id_seq,
        daz_gallery_health_log_id_seq TO daz_user;
    GRANT EXECUTE ON FUNCTION add_gallery_image(varchar, text, varchar, text, integer),
        daz_gallery_refresh_stats(varchar, varchar, integer, boolean) TO daz_user;
END
$do$;

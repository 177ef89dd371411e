-- 029: image health checks and the "graveyard" (dead images that may come back).
--
-- Schedule: an active image is checked at most hourly, and not before next_check_at when a
-- failure pushed that out. A 4xx/network failure counts towards death (3 in a row) and backs off
-- 3h, 6h, 12h, 24h, 48h. A 5xx is the host's problem, not the image's: it is counted apart
-- (server_error_count) and backs off 15 min doubling to 24h, without killing the image.
-- Bringing an image back (restore_dead_image) never takes a user over their limit; a healthy
-- check alone never reactivates anything (Go's did, undoing the size limit).
-- daz also sends 401/403/429 (hosts keeping bots out, not a missing image) the 5xx way.
--
-- Health log: status_code is the HTTP status the checker got (NULL when nothing answered: DNS
-- failure, refused address, timeout, or a caller that does not say, such as the Go bot), and
-- response_time_ms the time its requests took. Go wrote 0/200 and no time. Both are trailing
-- parameters with defaults so the Go calls (2 and 3 arguments) still work; the old signatures
-- are dropped first, or the short calls would become ambiguous between two functions.

CREATE INDEX IF NOT EXISTS idx_gallery_recovery_check
    ON daz_gallery_images (is_active, next_check_at)
    WHERE is_active = false AND pruned_reason IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_gallery_due_check
    ON daz_gallery_images (state, last_check_at);

-- Go declared this IMMUTABLE although it reads now(): STABLE is the truth. The timestamp form
-- is Go's signature; the timestamptz form matches the column and is what the functions use.
CREATE OR REPLACE FUNCTION calculate_next_check_time(p_first_failure_at timestamptz)
RETURNS interval LANGUAGE sql STABLE AS $fn$
    SELECT CASE
        WHEN now() - coalesce(p_first_failure_at, now()) < interval '3 hours' THEN interval '3 hours'
        WHEN now() - p_first_failure_at < interval '6 hours' THEN interval '6 hours'
        WHEN now() - p_first_failure_at < interval '12 hours' THEN interval '12 hours'
        WHEN now() - p_first_failure_at < interval '24 hours' THEN interval '24 hours'
        ELSE interval '48 hours' END;
$fn$;
CREATE OR REPLACE FUNCTION calculate_next_check_time(p_first_failure_at timestamp)
RETURNS interval LANGUAGE sql STABLE AS $fn$
    SELECT calculate_next_check_time(p_first_failure_at::timestamptz);
$fn$;

CREATE OR REPLACE FUNCTION get_images_for_health_check(p_limit integer DEFAULT 50)
RETURNS TABLE(id bigint, url text, failure_count integer)
LANGUAGE sql STABLE AS $fn$
    SELECT i.id, i.url, coalesce(i.failure_count, 0)
    FROM daz_gallery_images i
    WHERE (i.state = 'active'
           AND (i.last_check_at IS NULL OR i.last_check_at < now() - interval '1 hour')
           AND (i.next_check_at IS NULL OR i.next_check_at <= now()))
       OR (i.state = 'dead' AND i.next_check_at IS NOT NULL AND i.next_check_at <= now())
    ORDER BY (i.state = 'active') DESC, i.last_check_at ASC NULLS FIRST, i.id
    LIMIT greatest(p_limit, 0);
$fn$;

-- Dead images due for a recovery check (Go ran this as an ad-hoc query, and also picked up
-- images pruned by the size limit, which a healthy check then revived).
CREATE OR REPLACE FUNCTION get_images_for_recovery(p_limit integer DEFAULT 10)
RETURNS TABLE(id bigint, url text, username varchar, channel varchar, failure_count integer)
LANGUAGE sql STABLE AS $fn$
    SELECT i.id, i.url, i.username, i.channel, coalesce(i.failure_count, 0)
    FROM daz_gallery_images i
    WHERE i.state = 'dead'
      AND (i.next_check_at IS NULL OR i.next_check_at <= now())
      AND (i.last_check_at IS NULL OR i.last_check_at > now() - interval '7 days')
    ORDER BY coalesce(i.next_check_at, i.last_check_at, i.posted_at), i.id
    LIMIT greatest(p_limit, 0);
$fn$;

DROP FUNCTION IF EXISTS mark_image_for_health_check(bigint, boolean, text);
CREATE OR REPLACE FUNCTION mark_image_for_health_check(p_image_id bigint, p_failed boolean,
                                                       p_error_message text DEFAULT NULL,
                                                       p_status_code integer DEFAULT NULL,
                                                       p_response_time_ms integer DEFAULT NULL)
RETURNS void LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_before daz_gallery_images%ROWTYPE;
    v_after  daz_gallery_images%ROWTYPE;
BEGIN
    SELECT * INTO v_before FROM daz_gallery_images WHERE id = p_image_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_failed THEN
        UPDATE daz_gallery_images
        SET failure_count = coalesce(failure_count, 0) + 1,
            first_failure_at = coalesce(first_failure_at, now()),
            last_check_at = now(),
            next_check_at = now() + interval '3 hours'
                            * power(2, least(coalesce(failure_count, 0), 4))::int,
            server_error_count = 0,
            last_status_code = p_status_code,
            state = CASE WHEN state = 'active' AND coalesce(failure_count, 0) + 1 >= 3
                         THEN 'dead' ELSE state END,
            pruned_reason = CASE WHEN state = 'active' AND coalesce(failure_count, 0) + 1 >= 3
                                 THEN coalesce(nullif(p_error_message, ''),
                                               'Failed 3 health checks')
                                 ELSE pruned_reason END,
            updated_at = now()
        WHERE id = p_image_id
        RETURNING * INTO v_after;
    ELSE
        UPDATE daz_gallery_images
        SET failure_count = 0, first_failure_at = NULL, last_check_at = now(),
            next_check_at = CASE WHEN state = 'active' THEN NULL ELSE next_check_at END,
            server_error_count = 0, last_status_code = p_status_code, updated_at = now()
        WHERE id = p_image_id
        RETURNING * INTO v_after;
    END IF;

    INSERT INTO daz_gallery_health_log (image_id, status_code, response_time_ms, error_message,
                                        previous_status, new_status)
    VALUES (p_image_id, p_status_code, p_response_time_ms, p_error_message,
            v_before.is_active, v_after.is_active);
    IF v_after.state IS DISTINCT FROM v_before.state THEN
        PERFORM daz_gallery_refresh_stats(v_after.username, v_after.channel);
    END IF;
END
$fn$;

-- An answer that says nothing about the image (5xx, or 401/403/429 from a host keeping bots
-- out): back off (15 min doubling, at most 24 h) without counting a failure. Returns when the
-- image is due again.
DROP FUNCTION IF EXISTS mark_image_server_error(bigint, integer, text);
CREATE OR REPLACE FUNCTION mark_image_server_error(p_image_id bigint,
                                                   p_status_code integer DEFAULT 503,
                                                   p_error_message text DEFAULT NULL,
                                                   p_response_time_ms integer DEFAULT NULL)
RETURNS timestamptz LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_next timestamptz;
    v_active boolean;
BEGIN
    UPDATE daz_gallery_images
    SET server_error_count = server_error_count + 1,
        last_status_code = p_status_code,
        last_check_at = now(),
        next_check_at = now() + least(interval '15 minutes'
                                      * power(2, least(server_error_count, 7))::int,
                                      interval '24 hours'),
        updated_at = now()
    WHERE id = p_image_id
    RETURNING next_check_at, is_active INTO v_next, v_active;
    IF FOUND THEN
        INSERT INTO daz_gallery_health_log (image_id, status_code, response_time_ms,
                                            error_message, previous_status, new_status)
        VALUES (p_image_id, p_status_code, p_response_time_ms, p_error_message, v_active,
                v_active);
    END IF;
    RETURN v_next;
END
$fn$;

-- Bring a dead (or pruned) image back if the user has room under p_max_images across all
-- channels. Takes the same per-user lock as add_gallery_image so the two cannot overshoot.
CREATE OR REPLACE FUNCTION restore_dead_image(p_image_id bigint, p_max_images integer DEFAULT 25)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_user    varchar;
    v_channel varchar;
    v_state   varchar;
BEGIN
    SELECT username INTO v_user FROM daz_gallery_images WHERE id = p_image_id;
    IF v_user IS NULL THEN
        RETURN false;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('gallery_' || v_user)::bigint);
    SELECT state, channel INTO v_state, v_channel FROM daz_gallery_images
    WHERE id = p_image_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    ELSIF v_state = 'active' THEN
        RETURN true;
    END IF;
    IF (SELECT count(*) FROM daz_gallery_images WHERE username = v_user AND state = 'active')
       >= greatest(coalesce(p_max_images, 25), 1) THEN
        RETURN false;
    END IF;
    UPDATE daz_gallery_images
    SET state = 'active', failure_count = 0, first_failure_at = NULL, pruned_reason = NULL,
        next_check_at = NULL, server_error_count = 0, updated_at = now()
    WHERE id = p_image_id;
    PERFORM daz_gallery_refresh_stats(v_user, v_channel);
    RETURN true;
END
$fn$;

-- Restore refused (no room): look again later, on the schedule of calculate_next_check_time.
CREATE OR REPLACE FUNCTION update_dead_image_recovery(p_image_id bigint)
RETURNS void LANGUAGE sql VOLATILE AS $fn$
    UPDATE daz_gallery_images
    SET next_check_at = now() + calculate_next_check_time(first_failure_at),
        last_check_at = now(), updated_at = now()
    WHERE id = p_image_id AND state <> 'active';
$fn$;

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
    GRANT EXECUTE ON FUNCTION
        mark_image_for_health_check(bigint, boolean, text, integer, integer),
        mark_image_server_error(bigint, integer, text, integer),
        get_images_for_health_check(integer),
        get_images_for_recovery(integer),
        restore_dead_image(bigint, integer),
        update_dead_image_recovery(bigint),
        calculate_next_check_time(timestamptz),
        calculate_next_check_time(timestamp) TO daz_user;
END
$do$;

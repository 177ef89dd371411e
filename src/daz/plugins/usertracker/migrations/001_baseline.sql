-- usertracker: sessions (who is in which channel since when) and join/leave history.
-- Times are UTC wall clock in TIMESTAMP columns, as the Go bot wrote them.

CREATE TABLE IF NOT EXISTS daz_user_tracker_sessions (
    id            SERIAL PRIMARY KEY,
    channel       VARCHAR(255) NOT NULL,
    username      VARCHAR(255) NOT NULL,
    rank          INTEGER DEFAULT 0,
    joined_at     TIMESTAMP NOT NULL,
    left_at       TIMESTAMP,
    last_activity TIMESTAMP NOT NULL,
    is_active     BOOLEAN DEFAULT true,
    UNIQUE (channel, username, joined_at)
);
-- Presence details daz records (the Go bot did not): AFK state, and sessions that were opened
-- because the user was already there when daz joined (their real join time is unknown).
ALTER TABLE daz_user_tracker_sessions ADD COLUMN IF NOT EXISTS is_afk BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE daz_user_tracker_sessions
    ADD COLUMN IF NOT EXISTS observed_at_join BOOLEAN NOT NULL DEFAULT false;

CREATE INDEX IF NOT EXISTS idx_usertracker_active_sessions
    ON daz_user_tracker_sessions (channel, username) WHERE is_active = TRUE;
CREATE INDEX IF NOT EXISTS idx_usertracker_last_activity
    ON daz_user_tracker_sessions (channel, username, last_activity);

-- At most one active session per user and channel. CyTube names are unique ignoring case and
-- every reader matches lower(username), so the key is too. The Go bot could leave duplicates
-- (its upsert reactivated an old session next to an active one); close them first, keeping the
-- newest, exactly as scripts/cleanup-stale-sessions.sql does.
WITH ranked AS (
    SELECT id, row_number() OVER (PARTITION BY channel, lower(username)
                                  ORDER BY joined_at DESC, last_activity DESC, id DESC) AS n
    FROM daz_user_tracker_sessions
    WHERE is_active = true
)
UPDATE daz_user_tracker_sessions s
SET is_active = false, left_at = coalesce(s.left_at, s.last_activity)
FROM ranked WHERE s.id = ranked.id AND ranked.n > 1;
CREATE UNIQUE INDEX IF NOT EXISTS idx_usertracker_one_active_session
    ON daz_user_tracker_sessions (channel, lower(username)) WHERE is_active = TRUE;

CREATE TABLE IF NOT EXISTS daz_user_tracker_history (
    id         BIGSERIAL PRIMARY KEY,
    channel    VARCHAR(255) NOT NULL,
    username   VARCHAR(255) NOT NULL,
    event_type VARCHAR(50)  NOT NULL,
    timestamp  TIMESTAMP    NOT NULL,
    metadata   JSONB
);
CREATE INDEX IF NOT EXISTS idx_usertracker_history_user
    ON daz_user_tracker_history (channel, username, timestamp);

-- Open or continue a user's session (Go name, signature and result; fixed body).
-- Serialised per (channel, user) by an advisory lock, so concurrent calls cannot both insert;
-- the unique index above backs that up.
--   * an active session exists: it is continued (rank, last_activity), was_reactivated = true;
--   * the user's latest session was closed without a leave (userlist resync, idle sweep:
--     left_at IS NULL): it is reopened, was_reactivated = true;
--   * otherwise a new session starts at p_now, was_reactivated = false.
-- Go reopened the latest inactive session even next to an active one, and even after a real
-- leave, leaving two active sessions or resurrecting a finished visit.
CREATE OR REPLACE FUNCTION upsert_user_session(p_channel varchar, p_username varchar,
                                               p_rank integer, p_now timestamp)
RETURNS TABLE(session_id integer, was_reactivated boolean)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_id integer;
    v_active boolean;
    v_left timestamp;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('daz_user_session:' || p_channel || ':'
                                           || lower(p_username)));

    SELECT s.id INTO v_id FROM daz_user_tracker_sessions s
    WHERE s.channel = p_channel AND lower(s.username) = lower(p_username) AND s.is_active
    FOR UPDATE;
    IF v_id IS NOT NULL THEN
        UPDATE daz_user_tracker_sessions s
        SET rank = p_rank, last_activity = greatest(s.last_activity, p_now)
        WHERE s.id = v_id;
        RETURN QUERY SELECT v_id, true;
        RETURN;
    END IF;

    SELECT s.id, s.left_at INTO v_id, v_left FROM daz_user_tracker_sessions s
    WHERE s.channel = p_channel AND lower(s.username) = lower(p_username)
    ORDER BY s.joined_at DESC, s.id DESC LIMIT 1
    FOR UPDATE;
    IF v_id IS NOT NULL AND v_left IS NULL THEN
        UPDATE daz_user_tracker_sessions s
        SET is_active = true, left_at = NULL, rank = p_rank,
            last_activity = greatest(s.last_activity, p_now)
        WHERE s.id = v_id;
        RETURN QUERY SELECT v_id, true;
        RETURN;
    END IF;

    INSERT INTO daz_user_tracker_sessions AS s (channel, username, rank, joined_at, left_at,
                                                last_activity, is_active)
    VALUES (p_channel, p_username, p_rank, p_now, NULL, p_now, true)
    ON CONFLICT (channel, username, joined_at) DO UPDATE
    SET is_active = true, left_at = NULL, rank = EXCLUDED.rank,
        last_activity = EXCLUDED.last_activity
    RETURNING s.id INTO v_id;
    RETURN QUERY SELECT v_id, false;
END
$fn$;

-- A person's stays, newest first (!seen, the greeter's first-visit and back-soon checks, the
-- user page): every reader matches lower(username), which the Go indexes cannot serve.
-- CONCURRENTLY: built outside the transaction without stopping writers (daz/db/online.py).
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_usertracker_sessions_user_time
    ON daz_user_tracker_sessions (channel, lower(username), joined_at DESC);

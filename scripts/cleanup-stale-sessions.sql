-- Close duplicate active usertracker sessions: for each (channel, username) with more than one
-- active session, the one that joined last stays (ties: latest activity, then highest id) and
-- the others end at their last activity. Prints how many it closed (sessions_closed).
-- Safe to run at any time; daz runs it with `daz db cleanup-sessions`. Since daz's
-- usertracker schema a unique index allows one active session per user, so on a daz database
-- this finds nothing; it is for databases the Go bot wrote.

WITH ranked AS (
    SELECT id, row_number() OVER (PARTITION BY channel, username
                                  ORDER BY joined_at DESC, last_activity DESC, id DESC) AS n
    FROM daz_user_tracker_sessions
    WHERE is_active = true
), closed AS (
    UPDATE daz_user_tracker_sessions s
    SET is_active = false, left_at = coalesce(s.left_at, s.last_activity)
    FROM ranked WHERE s.id = ranked.id AND ranked.n > 1
    RETURNING s.id
)
SELECT 'Cleaned up duplicate sessions' AS status, count(*) AS sessions_closed FROM closed;

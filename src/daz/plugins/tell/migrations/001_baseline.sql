-- tell: messages left for someone who is not here. Table and columns as the Go bot made them;
-- times are UTC wall clock in TIMESTAMP columns. Re-runnable.

CREATE TABLE IF NOT EXISTS daz_tell_messages (
    id           SERIAL PRIMARY KEY,
    channel      VARCHAR(255) NOT NULL,
    from_user    VARCHAR(255) NOT NULL,
    to_user      VARCHAR(255) NOT NULL,
    message      TEXT NOT NULL,
    is_pm        BOOLEAN DEFAULT false,
    created_at   TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    expires_at   TIMESTAMP NOT NULL,
    delivered    BOOLEAN DEFAULT false,
    delivered_at TIMESTAMP
);

-- daz: delivery is a claim. `delivered = true` is set, in one UPDATE, by the process that will
-- send the message (so two processes never both get it); `sent_at` is set once the line was
-- handed to the room. A claim without `sent_at` after the claim timeout was lost in a crash and
-- is handed out again.
ALTER TABLE daz_tell_messages ADD COLUMN IF NOT EXISTS sent_at TIMESTAMP;
ALTER TABLE daz_tell_messages ADD COLUMN IF NOT EXISTS claimed_by VARCHAR(64);
-- Go rows that were delivered before these columns existed were sent: do not hand them out again.
UPDATE daz_tell_messages SET sent_at = coalesce(delivered_at, created_at)
WHERE delivered AND sent_at IS NULL AND claimed_by IS NULL;

-- daz: the chat line (or PM) a tell came from, as a digest (channel, kind, the server's ms time,
-- sender, text). Two daz processes in one channel both run a public `!tell`; this key lets only
-- the first insert take effect. Go rows and lines without a server time have NULL, which never
-- conflicts (NULLs are distinct in a unique index).
ALTER TABLE daz_tell_messages ADD COLUMN IF NOT EXISTS source_key VARCHAR(64);
CREATE UNIQUE INDEX IF NOT EXISTS idx_tell_source_key ON daz_tell_messages (source_key);

-- daz allows several pending messages per recipient (capped by config), so the Go index that
-- allowed one (it also counted expired rows, so an expired tell blocked a new one) goes.
DROP INDEX IF EXISTS idx_tell_pending_unique;

CREATE INDEX IF NOT EXISTS idx_tell_pending ON daz_tell_messages (channel, to_user, delivered);
CREATE INDEX IF NOT EXISTS idx_tell_expires ON daz_tell_messages (expires_at)
    WHERE delivered = false;
-- daz: the lookups on join/speak and the caps match names ignoring case.
CREATE INDEX IF NOT EXISTS idx_tell_pending_recipient
    ON daz_tell_messages (channel, lower(to_user)) WHERE delivered = false;
CREATE INDEX IF NOT EXISTS idx_tell_pending_sender
    ON daz_tell_messages (channel, lower(from_user)) WHERE delivered = false;
CREATE INDEX IF NOT EXISTS idx_tell_unsent_claims
    ON daz_tell_messages (delivered_at) WHERE delivered AND sent_at IS NULL;

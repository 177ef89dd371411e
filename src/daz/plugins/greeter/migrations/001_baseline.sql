-- greeter: every greeting sent, who opted out, and each channel's last greeting.
-- Tables, columns and types are the Go Daz ones (a Go database is adopted as it is); times are UTC wall
-- clock in TIMESTAMP columns. What daz adds is marked below; all of it is re-runnable.

CREATE TABLE IF NOT EXISTS daz_greeter_history (
    id                BIGSERIAL PRIMARY KEY,
    channel           VARCHAR(255) NOT NULL,
    username          VARCHAR(255) NOT NULL,
    greeting_type     VARCHAR(50)  NOT NULL,
    greeting_text     TEXT         NOT NULL,
    greeting_metadata JSONB,
    created_at        TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_greeter_history_user
    ON daz_greeter_history (channel, username, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_greeter_history_type
    ON daz_greeter_history (greeting_type, created_at DESC);
-- daz: names are matched ignoring case (CyTube names are unique that way), so the cooldown and
-- first-visit lookups need the lower-cased key.
CREATE INDEX IF NOT EXISTS idx_greeter_history_user_lower
    ON daz_greeter_history (channel, lower(username), created_at DESC);
-- daz: each greeting carries a greeting_id in its metadata; a write retried after a failure
-- (retry queue, at-least-once) finds its first copy here and is not recorded twice.
-- Go rows have NULL metadata and are outside this index.
CREATE UNIQUE INDEX IF NOT EXISTS idx_greeter_history_greeting_id
    ON daz_greeter_history ((greeting_metadata ->> 'greeting_id'))
    WHERE greeting_metadata ? 'greeting_id';

CREATE TABLE IF NOT EXISTS daz_greeter_preferences (
    id             SERIAL PRIMARY KEY,
    channel        VARCHAR(255) NOT NULL,
    username       VARCHAR(255) NOT NULL,
    opted_out      BOOLEAN DEFAULT false,
    opt_out_reason VARCHAR(255),
    created_at     TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at     TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (channel, username)
);
CREATE INDEX IF NOT EXISTS idx_greeter_preferences_opted_out
    ON daz_greeter_preferences (channel, username) WHERE opted_out = TRUE;

CREATE TABLE IF NOT EXISTS daz_greeter_state (
    id                   SERIAL PRIMARY KEY,
    channel              VARCHAR(255) NOT NULL UNIQUE,
    last_greeting_at     TIMESTAMP,
    last_greeting_user   VARCHAR(255),
    total_greetings_sent INTEGER DEFAULT 0,
    created_at           TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at           TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_greeter_state_channel ON daz_greeter_state (channel);

-- The opt-out check on every join matches lower(username).
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_greeter_preferences_lower
    ON daz_greeter_preferences (channel, lower(username));

-- 031: Ollama reply dedup cache and per-user rate limits.
-- Go checked "already answered?" and inserted the answer in two separate statements, so two
-- workers could both answer. The unique key below lets a writer claim a message first:
-- INSERT ... (response_text NULL) ON CONFLICT DO NOTHING RETURNING id -- only the winner gets a
-- row back and generates; it fills response_text afterwards (ollama_claim_response does this).

CREATE TABLE IF NOT EXISTS daz_ollama_responses (
    id            BIGSERIAL PRIMARY KEY,
    channel       VARCHAR(255) NOT NULL,
    username      VARCHAR(255) NOT NULL,
    message_hash  VARCHAR(64)  NOT NULL,  -- hex sha256 of channel:username:message:message_time
    message_time  BIGINT       NOT NULL,  -- CyTube's time: milliseconds since the epoch
    responded_at  TIMESTAMP    NOT NULL DEFAULT now(),
    response_text TEXT,
    UNIQUE (channel, username, message_hash, message_time)
);
CREATE INDEX IF NOT EXISTS idx_ollama_responses_lookup
    ON daz_ollama_responses (channel, username, message_time DESC);
CREATE INDEX IF NOT EXISTS idx_ollama_responses_cleanup ON daz_ollama_responses (responded_at);

-- One row per (channel, username). daz also keeps a per-channel limit here under the username
-- '*channel*', which no CyTube name can be (names are [\w-]); Go Daz never looks it up.
CREATE TABLE IF NOT EXISTS daz_ollama_rate_limits (
    id               SERIAL PRIMARY KEY,
    channel          VARCHAR(255) NOT NULL,
    username         VARCHAR(255) NOT NULL,
    last_response_at TIMESTAMP    NOT NULL,
    UNIQUE (channel, username)
);
CREATE INDEX IF NOT EXISTS idx_ollama_rate_limits_lookup
    ON daz_ollama_rate_limits (channel, username, last_response_at DESC);

-- True for exactly one caller per message: the one that may generate the reply.
CREATE OR REPLACE FUNCTION ollama_claim_response(p_channel varchar, p_username varchar,
                                                 p_message_hash varchar, p_message_time bigint)
RETURNS boolean LANGUAGE sql VOLATILE AS $fn$
    WITH ins AS (
        INSERT INTO daz_ollama_responses (channel, username, message_hash, message_time)
        VALUES (p_channel, p_username, p_message_hash, p_message_time)
        ON CONFLICT (channel, username, message_hash, message_time) DO NOTHING
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM ins);
$fn$;

-- True (and the clock restarted) when p_seconds have passed since this user's last reply;
-- false otherwise. One statement, so two workers cannot both pass. Times are the session's
-- (UTC) wall clock, as the TIMESTAMP column holds.
CREATE OR REPLACE FUNCTION ollama_take_rate_limit(p_channel varchar, p_username varchar,
                                                  p_seconds integer)
RETURNS boolean LANGUAGE sql VOLATILE AS $fn$
    WITH up AS (
        INSERT INTO daz_ollama_rate_limits AS r (channel, username, last_response_at)
        VALUES (p_channel, p_username, localtimestamp)
        ON CONFLICT (channel, username) DO UPDATE SET last_response_at = localtimestamp
        WHERE r.last_response_at <= localtimestamp - make_interval(secs => p_seconds)
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM up);
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
    GRANT SELECT, INSERT, UPDATE, DELETE ON daz_ollama_responses, daz_ollama_rate_limits
        TO daz_user;
    GRANT USAGE, SELECT ON SEQUENCE daz_ollama_responses_id_seq, daz_ollama_rate_limits_id_seq
        TO daz_user;
    GRANT EXECUTE ON FUNCTION ollama_claim_response(varchar, varchar, varchar, bigint),
        ollama_take_rate_limit(varchar, varchar, integer) TO daz_user;
END
$do$;

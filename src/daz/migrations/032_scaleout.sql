-- Who runs, and which instance holds which room (docs/scale-out.md).
-- A row in daz_room_leases is the right to be in that room; it lapses at expires_at unless its
-- holder renews it, so a process that dies without a word frees its rooms within one lease.

CREATE TABLE IF NOT EXISTS daz_instances (
    instance_id uuid PRIMARY KEY,
    name        text NOT NULL,
    max_rooms   integer NOT NULL DEFAULT 0,  -- 0: no cap
    web_url     text NOT NULL DEFAULT '',
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS daz_room_leases (
    lease_key   text PRIMARY KEY,            -- server URL, channel and bot account
    room_id     text NOT NULL,
    channel     text NOT NULL,
    holder      uuid NOT NULL,
    holder_name text NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    epoch       bigint NOT NULL DEFAULT 1    -- grows with every change of holder
);

CREATE INDEX IF NOT EXISTS idx_daz_room_leases_holder ON daz_room_leases (holder);

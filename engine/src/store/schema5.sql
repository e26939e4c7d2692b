-- What a running engine says of itself (`relais status`): its rule set,
-- plugins, last reload and sources, as JSON, written when it changes.
CREATE TABLE engine_status (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Scheduled rules: when each last fired, to tell a missed run after a stop.
CREATE TABLE schedule_state (
    rule       TEXT PRIMARY KEY,
    last_fired TEXT NOT NULL
);

-- Escape campaigns and prepared escape plans (a plan is a campaign not yet fired).

CREATE TABLE campaigns (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    selector            TEXT NOT NULL,
    target_suite        TEXT NOT NULL,
    waves               TEXT NOT NULL,
    max_in_flight       INTEGER NOT NULL,
    failure_threshold   INTEGER NOT NULL,
    deadline            INTEGER NOT NULL,
    drill               INTEGER NOT NULL,
    sign_handshakes     INTEGER NOT NULL,
    directives          TEXT NOT NULL,
    state               TEXT NOT NULL,
    manifest            BLOB,
    created_by          TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    armed_at            INTEGER,
    fired_at            INTEGER,
    finished_at         INTEGER
);
CREATE INDEX campaigns_by_state ON campaigns(state);

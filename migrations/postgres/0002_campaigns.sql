-- Escape campaigns and prepared escape plans (a plan is a campaign not yet fired).

CREATE TABLE campaigns (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    selector            TEXT NOT NULL,
    target_suite        TEXT NOT NULL,
    waves               TEXT NOT NULL,
    max_in_flight       BIGINT NOT NULL,
    failure_threshold   BIGINT NOT NULL,
    deadline            BIGINT NOT NULL,
    drill               BOOLEAN NOT NULL,
    sign_handshakes     BOOLEAN NOT NULL,
    directives          TEXT NOT NULL,
    state               TEXT NOT NULL,
    manifest            BYTEA,
    created_by          TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    armed_at            BIGINT,
    fired_at            BIGINT,
    finished_at         BIGINT
);
CREATE INDEX campaigns_by_state ON campaigns(state);

-- pqescape store, embedded SQLite flavour. Times are Unix seconds; ids are text.
-- Every secret column holds a value sealed under the master key (secrets.rs).

CREATE TABLE consumers (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    labels          TEXT NOT NULL,
    state           TEXT NOT NULL,
    suite           TEXT NOT NULL,
    key_id          INTEGER NOT NULL,
    psk_sealed      BLOB,
    last_sequence   INTEGER NOT NULL DEFAULT 0,
    last_seen       INTEGER,
    agent_version   TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE consumer_labels (
    consumer_id TEXT NOT NULL REFERENCES consumers(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (consumer_id, key)
);
CREATE INDEX consumer_labels_by_pair ON consumer_labels(key, value);

CREATE TABLE enrollment_tokens (
    id              TEXT PRIMARY KEY,
    consumer_id     TEXT NOT NULL REFERENCES consumers(id) ON DELETE CASCADE,
    verifier        BLOB NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER,
    session_sealed  BLOB
);

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    token_hash  BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TABLE signing_keys (
    id          TEXT PRIMARY KEY,
    seed_sealed BLOB NOT NULL,
    public_key  BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE settings (
    key     TEXT PRIMARY KEY,
    value   BLOB NOT NULL
);

-- pqescape store, PostgreSQL flavour (the production store several replicas share).
-- Times are Unix seconds; ids are text. Secret columns hold values sealed under the
-- master key (secrets.rs).

CREATE TABLE consumers (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    labels          TEXT NOT NULL,
    state           TEXT NOT NULL,
    suite           TEXT NOT NULL,
    key_id          BIGINT NOT NULL,
    psk_sealed      BYTEA,
    last_sequence   BIGINT NOT NULL DEFAULT 0,
    last_seen       BIGINT,
    agent_version   TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
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
    verifier        BYTEA NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT,
    session_sealed  BYTEA
);

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    token_hash  BYTEA NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    prev_hash   BYTEA NOT NULL,
    hash        BYTEA NOT NULL
);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE signing_keys (
    id          TEXT PRIMARY KEY,
    seed_sealed BYTEA NOT NULL,
    public_key  BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE settings (
    key     TEXT PRIMARY KEY,
    value   BYTEA NOT NULL
);

-- The campaign engine's durable outbox: one row per (campaign, consumer), whose
-- state is written before the message that follows it is sent.
-- States: pending, sent, acknowledged, negotiating, migrated, drill_passed, failed, expired.

CREATE TABLE deliveries (
    campaign_id     TEXT NOT NULL REFERENCES campaigns(id),
    consumer_id     TEXT NOT NULL REFERENCES consumers(id),
    wave            INTEGER NOT NULL,
    sequence        INTEGER NOT NULL,
    state           TEXT NOT NULL,
    reason          TEXT,
    escape_message  BLOB,
    pending_sealed  BLOB,
    attempts        INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, consumer_id)
);
CREATE INDEX deliveries_by_consumer ON deliveries(consumer_id, state);
CREATE INDEX deliveries_by_state ON deliveries(campaign_id, state);

-- Waves open one after another: deliveries of later waves wait until every
-- delivery of the open waves has ended.
ALTER TABLE campaigns ADD COLUMN current_wave INTEGER NOT NULL DEFAULT 0;

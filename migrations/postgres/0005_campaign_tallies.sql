-- A campaign's deliveries counted once for every replica. Each replica steers
-- the campaigns it runs from such a count twice a second, and a count reads every
-- delivery of the campaign; with several replicas, each counting for itself, the
-- counts were most of what the database did during a large campaign. A replica
-- claims the next count by moving claimed_at_ms (compare-and-set on the value it
-- read), counts, and stores the counts as "wave:state:n" items joined by commas,
-- with the claim they were made under (counted_at_ms).
CREATE TABLE campaign_tallies (
    campaign_id   TEXT PRIMARY KEY REFERENCES campaigns(id),
    claimed_at_ms BIGINT NOT NULL,
    counted_at_ms BIGINT,
    counts        TEXT
);

-- Every sweep of every replica asks for a campaign's pending deliveries and the
-- sent ones whose resend is due (sent before a time). Without an index on when a
-- delivery was sent, the second half read every delivery of the campaign: a
-- scan of 100,000 rows, about 45 ms of PostgreSQL, twelve times a second with six
-- replicas. Only rows in the sent state are in this index, so it costs a write
-- when an escape goes out or out again, not at the other steps.
CREATE INDEX deliveries_sent_by_time ON deliveries(campaign_id, updated_at) WHERE state = 'sent';

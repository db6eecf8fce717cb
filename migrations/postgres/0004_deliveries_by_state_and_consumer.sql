-- A delivery is found by campaign, state and consumer at once: the end of a
-- migration names all three. With the consumer in the index, a plan that takes
-- this index for it reads one entry instead of every delivery of the campaign in
-- that state; dispatch reads a campaign's pending deliveries in consumer order.
DROP INDEX deliveries_by_state;
CREATE INDEX deliveries_by_state ON deliveries(campaign_id, state, consumer_id);

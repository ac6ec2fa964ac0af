-- The data path at a glance: queue and dead-letter depth and the queue's lag (as the consumers
-- last sampled them, and how long ago), live consumers (a heartbeat in the last 30 seconds),
-- throughput and ingest-to-row latency over the last minute, or over the latest 5,000 commits
-- when there were more (so a refresh reads at most that many rows at any rate).
WITH q AS (
    SELECT max(visible) FILTER (WHERE role = 'queue') AS queue_depth,
           max(in_flight) FILTER (WHERE role = 'queue') AS in_flight,
           max(visible) FILTER (WHERE role = 'dead_letter') AS dlq_depth,
           max(oldest_age_s) FILTER (WHERE role = 'queue') AS lag_s,
           extract(epoch FROM now() - min(sampled_at)) AS sampled_s_ago
    FROM queue_samples
), c AS (
    SELECT count(*) FILTER (WHERE seen_at > now() - interval '30 seconds')
               AS consumers_live,
           extract(epoch FROM now() - max(last_batch_at)) AS last_batch_s_ago
    FROM consumer_status
), recent AS (
    SELECT scored_at, extract(epoch FROM scored_at - ts) AS latency_s
    FROM tx_scored
    WHERE scored_at > now() - interval '60 seconds'
    ORDER BY scored_at DESC
    LIMIT 5000
), t AS (
    SELECT CASE WHEN count(*) < 5000 THEN count(*) / 60.0
                ELSE count(*) / greatest(extract(epoch FROM now() - min(scored_at)), 0.001)
           END AS tx_per_s,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_s) * 1000 AS latency_p50_ms,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_s) * 1000 AS latency_p99_ms
    FROM recent
)
SELECT q.queue_depth, q.in_flight, q.dlq_depth, round(q.lag_s::numeric, 1) AS lag_s,
       round(q.sampled_s_ago::numeric, 1) AS sampled_s_ago,
       c.consumers_live, round(c.last_batch_s_ago::numeric, 1) AS last_batch_s_ago,
       round(t.tx_per_s::numeric, 1) AS tx_per_s,
       round(t.latency_p50_ms::numeric, 0) AS latency_p50_ms,
       round(t.latency_p99_ms::numeric, 0) AS latency_p99_ms
FROM q, c, t

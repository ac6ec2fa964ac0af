-- High-risk transactions in the last N minutes (this minute and the N-1 before it), out of all
-- transactions then: the dashboards' big number. High-risk is the scoring model's decision;
-- a threshold given instead counts scores at or above it, on the rollup's 0.01 grid.
-- param threshold float model
-- param minutes int 15
SELECT coalesce(CASE WHEN {{threshold}} IS NULL THEN sum(high_risk)
                     ELSE sum(transactions) FILTER (WHERE bucket >= ceil({{threshold}} * 100))
                END, 0)::bigint AS high_risk,
       coalesce(sum(transactions), 0)::bigint AS transactions
FROM tx_rollup_minute
WHERE minute >= date_trunc('minute', now()) - make_interval(mins => {{minutes}} - 1)
  AND model NOT LIKE '% (shadow)'

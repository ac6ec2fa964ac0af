-- High-risk transactions (score >= threshold, on the 0.01 grid) in the last N minutes (this
-- minute and the N-1 before it), out of all transactions then: the dashboards' big number.
-- param threshold float 0.8
-- param minutes int 15
SELECT coalesce(sum(transactions) FILTER (WHERE bucket >= ceil({{threshold}} * 100)), 0)
           ::bigint AS high_risk,
       coalesce(sum(transactions), 0)::bigint AS transactions
FROM tx_rollup_minute
WHERE minute >= date_trunc('minute', now()) - make_interval(mins => {{minutes}} - 1)
  AND model NOT LIKE '% (shadow)'

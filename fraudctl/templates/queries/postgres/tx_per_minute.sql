-- Transactions and high-risk transactions per minute over the last N minutes, quiet minutes
-- included as zeros. Reads the minute rollup. High-risk is the scoring model's decision; a
-- threshold given instead counts scores at or above it, on the rollup's 0.01 grid.
-- param threshold float model
-- param minutes int 60
WITH recent AS (
    SELECT minute, sum(transactions)::bigint AS transactions,
           (CASE WHEN {{threshold}} IS NULL THEN sum(high_risk)
                 ELSE sum(transactions) FILTER (WHERE bucket >= ceil({{threshold}} * 100))
            END)::bigint AS high_risk
    FROM tx_rollup_minute
    WHERE minute >= date_trunc('minute', now()) - make_interval(mins => {{minutes}} - 1)
      AND model NOT LIKE '% (shadow)'
    GROUP BY minute
)
SELECT m.minute,
       coalesce(r.transactions, 0) AS transactions,
       coalesce(r.high_risk, 0) AS high_risk
FROM generate_series(date_trunc('minute', now()) - make_interval(mins => {{minutes}} - 1),
                     date_trunc('minute', now()), interval '1 minute') AS m (minute)
LEFT JOIN recent r ON r.minute = m.minute
ORDER BY m.minute

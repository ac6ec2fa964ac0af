-- Score histogram per model version over the last N minutes: 20 buckets of 0.05, each named
-- by its lower edge. A shadow challenger's scores appear as "<version> (shadow)".
-- param minutes int 60
SELECT model,
       round(((bucket / 5) * 0.05)::numeric, 2) AS bucket,
       sum(transactions)::bigint AS transactions
FROM tx_rollup_minute
WHERE minute >= date_trunc('minute', now()) - make_interval(mins => {{minutes}} - 1)
GROUP BY 1, 2
ORDER BY 1, 2

-- Scores per model version over the last N hours (canary, shadow, before and after a swap):
-- transactions, mean score, the median's 0.01 bucket, and the high-risk share (each model's
-- own decisions; with a threshold given, scores at or above it on the 0.01 grid). A shadow
-- challenger's scores and decisions appear as "<version> (shadow)".
-- param threshold float model
-- param hours int 24
WITH buckets AS (
    SELECT model, bucket, sum(transactions) AS transactions, sum(score_sum) AS score_sum,
           sum(high_risk) AS high_risk
    FROM tx_rollup_minute
    WHERE minute >= date_trunc('minute', now()) - make_interval(hours => {{hours}})
    GROUP BY model, bucket
), running AS (
    SELECT *, sum(transactions) OVER (PARTITION BY model ORDER BY bucket) AS below,
           sum(transactions) OVER (PARTITION BY model) AS total
    FROM buckets
)
SELECT model,
       sum(transactions)::bigint AS transactions,
       round((sum(score_sum) / sum(transactions))::numeric, 4) AS avg_score,
       round((min(bucket) FILTER (WHERE below * 2 >= total) / 100.0)::numeric, 2)
           AS median_bucket,
       round((coalesce(CASE WHEN {{threshold}} IS NULL THEN sum(high_risk)
                            ELSE sum(transactions) FILTER (
                                     WHERE bucket >= ceil({{threshold}} * 100))
                       END, 0)
              / sum(transactions))::numeric, 4) AS high_risk_share
FROM running
GROUP BY model
ORDER BY model

-- Score distribution per model version over the last N hours (canary, shadow, before/after).
-- param threshold float model
-- param hours int 24
SELECT model,
       count(*) AS transactions,
       round(avg(score), 4) AS avg_score,
       round(approx_percentile(score, 0.5), 4) AS p50,
       round(approx_percentile(score, 0.99), 4) AS p99,
       round(count_if(coalesce(score >= {{threshold}}, high_risk)) * 1.0 / count(*), 4) AS high_risk_share
FROM fraud.fraud_tx
WHERE dt >= date_format(current_timestamp - INTERVAL '{{hours}}' HOUR, '%Y-%m-%d')
  AND ts > current_timestamp - INTERVAL '{{hours}}' HOUR
GROUP BY model
ORDER BY model

-- Transactions and high-risk transactions per minute over the last N minutes.
-- param threshold float model
-- param minutes int 60
SELECT date_trunc('minute', ts) AS minute,
       count(*) AS transactions,
       count_if(coalesce(score >= {{threshold}}, high_risk)) AS high_risk
FROM fraud.fraud_tx
WHERE dt >= date_format(current_timestamp - INTERVAL '{{minutes}}' MINUTE, '%Y-%m-%d')
  AND ts > current_timestamp - INTERVAL '{{minutes}}' MINUTE
GROUP BY 1
ORDER BY 1

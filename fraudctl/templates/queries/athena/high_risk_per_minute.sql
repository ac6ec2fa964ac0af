-- Transactions and high-risk transactions per minute over the last N minutes.
-- param threshold float 0.8
-- param minutes int 60
SELECT date_trunc('minute', ts) AS minute,
       count(*) AS transactions,
       count_if(score >= {{threshold}}) AS high_risk
FROM fraud.fraud_tx
WHERE dt >= date_format(current_timestamp - INTERVAL '{{minutes}}' MINUTE, '%Y-%m-%d')
  AND ts > current_timestamp - INTERVAL '{{minutes}}' MINUTE
GROUP BY 1
ORDER BY 1

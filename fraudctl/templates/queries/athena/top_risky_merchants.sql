-- Merchants with the most high-risk transactions over the last N hours.
-- param threshold float model
-- param hours int 24
-- param limit int 10
SELECT merchant_id,
       count_if(coalesce(score >= {{threshold}}, high_risk)) AS high_risk,
       count(*) AS transactions,
       round(avg(score), 4) AS avg_score
FROM fraud.fraud_tx
WHERE dt >= date_format(current_timestamp - INTERVAL '{{hours}}' HOUR, '%Y-%m-%d')
  AND ts > current_timestamp - INTERVAL '{{hours}}' HOUR
GROUP BY merchant_id
HAVING count_if(coalesce(score >= {{threshold}}, high_risk)) > 0
ORDER BY high_risk DESC, merchant_id
LIMIT {{limit}}

-- The original lab's demo query, in the form Athena accepts: the highest-scoring high-risk
-- transactions of the last 15 minutes. (The lab compared the integer hr with a varchar and
-- called from_iso8601_timestamp on ts, a timestamp already: Athena refuses both. Its
-- partitions are read by dt, from the day 15 minutes ago to today, so midnight loses nothing.)
-- param threshold float model
-- param limit int 20
SELECT txn_id, ts, merchant_id, amount, score, model
FROM fraud.fraud_tx
WHERE dt BETWEEN date_format(current_timestamp - INTERVAL '15' MINUTE, '%Y-%m-%d')
             AND date_format(current_timestamp, '%Y-%m-%d')
  AND ts > current_timestamp - INTERVAL '15' MINUTE
  AND coalesce(score >= {{threshold}}, high_risk)
ORDER BY score DESC
LIMIT {{limit}}

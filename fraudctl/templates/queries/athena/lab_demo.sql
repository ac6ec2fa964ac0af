-- The original lab's demo query: the highest scores of the last 15 minutes, in today's partition.
-- param threshold float 0.8
-- param limit int 20
SELECT txn_id, ts, merchant_id, amount, score, model
FROM fraud.fraud_tx
WHERE dt = date_format(current_timestamp, '%Y-%m-%d')
  AND ts > current_timestamp - INTERVAL '15' MINUTE
  AND score >= {{threshold}}
ORDER BY score DESC
LIMIT {{limit}}

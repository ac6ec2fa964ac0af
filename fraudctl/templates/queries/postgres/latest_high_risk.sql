-- The latest high-risk transactions (flagged by the model that scored them, or with a score at
-- or above the threshold given) within the last N hours, newest first.
-- param threshold float model
-- param hours int 24
-- param limit int 20
SELECT txn_id, ts, merchant_id, amount, round(score::numeric, 4) AS score,
       features->>'model' AS model
FROM tx_scored
WHERE ts > now() - make_interval(hours => {{hours}})
  AND coalesce(score >= {{threshold}}, high_risk)
ORDER BY ts DESC
LIMIT {{limit}}

-- The latest high-risk transactions (score >= threshold, within the last N hours), newest
-- first.
-- param threshold float 0.8
-- param hours int 24
-- param limit int 20
SELECT txn_id, ts, merchant_id, amount, round(score::numeric, 4) AS score,
       features->>'model' AS model
FROM tx_scored
WHERE ts > now() - make_interval(hours => {{hours}})
  AND score >= {{threshold}}
ORDER BY ts DESC
LIMIT {{limit}}

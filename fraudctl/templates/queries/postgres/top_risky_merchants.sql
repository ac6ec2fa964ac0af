-- Merchants with the most high-risk transactions (flagged by the model that scored them, or
-- with a score at or above the threshold given) over the last N minutes, with their highest
-- score and latest high-risk time.
-- param threshold float model
-- param minutes int 15
-- param limit int 10
SELECT merchant_id,
       count(*) AS high_risk,
       round(max(score)::numeric, 4) AS max_score,
       max(ts) AS last_at
FROM tx_scored
WHERE coalesce(score >= {{threshold}}, high_risk)
  AND ts > now() - make_interval(mins => {{minutes}})
GROUP BY merchant_id
ORDER BY high_risk DESC, max_score DESC, merchant_id
LIMIT {{limit}}

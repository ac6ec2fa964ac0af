-- Merchants with the most high-risk transactions (score >= threshold) over the last N
-- minutes, with their highest score and latest high-risk time.
-- param threshold float 0.8
-- param minutes int 15
-- param limit int 10
SELECT merchant_id,
       count(*) AS high_risk,
       round(max(score)::numeric, 4) AS max_score,
       max(ts) AS last_at
FROM tx_scored
WHERE score >= {{threshold}}
  AND ts > now() - make_interval(mins => {{minutes}})
GROUP BY merchant_id
ORDER BY high_risk DESC, max_score DESC, merchant_id
LIMIT {{limit}}

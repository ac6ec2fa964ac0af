-- The model versions serving now, as the last swap recorded them: colour, version, role
-- (champion, canary, shadow) and share of traffic. Before any swap is recorded, the champion
-- the live consumers report scoring with (role "reported").
SELECT * FROM (
    SELECT colour, version, role, traffic_pct, started_at
    FROM model_deployments
    WHERE ended_at IS NULL
    UNION ALL
    SELECT NULL, split_part(model, ' ', 1), 'reported', NULL, min(started_at)
    FROM consumer_status
    WHERE seen_at > now() - interval '30 seconds'
      AND NOT EXISTS (SELECT 1 FROM model_deployments WHERE ended_at IS NULL)
    GROUP BY 2
) serving
ORDER BY role = 'champion' DESC, version

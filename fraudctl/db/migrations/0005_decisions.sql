-- The scoring model's decision, stored with its score: high_risk is true when the score reached
-- the decision threshold of the model that scored the row, so every reader counts the same rows
-- (before this, each reader compared the score with a threshold of its own). Rows scored
-- before this migration have no recorded decision (NULL) and count as not flagged.
ALTER TABLE tx_scored ADD COLUMN high_risk boolean;

-- The minute rollup counts the flagged rows of each (minute, model, score bucket); the rollup
-- only keeps the last two days, so the zeros written here for older minutes age out with them.
ALTER TABLE tx_rollup_minute ADD COLUMN high_risk bigint NOT NULL DEFAULT 0;

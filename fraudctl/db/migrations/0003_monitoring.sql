-- What the dashboards read beyond the data itself: queue depths as the consumers see them, and
-- each consumer's heartbeat, so the same SQL answers on both targets (SQS's depth is not in the
-- database otherwise, and an idle consumer commits no batch to prove it is alive).

CREATE TABLE queue_samples (
    queue_name   text PRIMARY KEY,
    role         text NOT NULL CHECK (role IN ('queue', 'dead_letter')),
    visible      bigint NOT NULL,
    in_flight    bigint NOT NULL,
    -- age of the oldest waiting message; NULL when empty or when the queue cannot tell (SQS)
    oldest_age_s double precision,
    sampled_at   timestamptz NOT NULL
);

ALTER TABLE consumer_status ADD COLUMN seen_at timestamptz;

-- Throughput and ingest latency are counted by commit time. A b-tree, not a block-range
-- index: with it the planner sees the column's true latest value and knows the last minute is
-- a sliver of the table (with BRIN it guessed a third, and scanned all of it).
CREATE INDEX tx_scored_scored_at_idx ON tx_scored (scored_at);

-- Scores per minute, model and 0.01-wide score bucket: what the dashboards chart, kept in the
-- same transaction as tx_scored (so exactly once), and small enough that a refresh never scans
-- an hour of transactions. Only the recent past is kept (ROLLUP_HOURS in the code).
CREATE TABLE tx_rollup_minute (
    minute       timestamptz NOT NULL,
    model        text NOT NULL,
    bucket       smallint NOT NULL CHECK (bucket BETWEEN 0 AND 99),  -- floor(score * 100)
    transactions bigint NOT NULL,
    score_sum    double precision NOT NULL,
    PRIMARY KEY (minute, model, bucket)
);

INSERT INTO tx_rollup_minute (minute, model, bucket, transactions, score_sum)
SELECT date_trunc('minute', ts), features->>'model', least(floor(score * 100), 99), count(*),
       sum(score)
FROM tx_scored
WHERE ts > now() - interval '48 hours'
GROUP BY 1, 2, 3;

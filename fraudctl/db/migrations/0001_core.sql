-- The pipeline's core tables. tx_raw and tx_scored keep the original lab's names, columns and
-- indexes so existing dashboards and queries keep working.

CREATE TABLE tx_raw (
    txn_id      text PRIMARY KEY,
    amount      numeric(14, 2) NOT NULL CHECK (amount >= 0),
    merchant_id text NOT NULL,
    ts          timestamptz NOT NULL,
    payload     jsonb NOT NULL
);

CREATE TABLE tx_scored (
    txn_id      text PRIMARY KEY,
    ts          timestamptz NOT NULL,
    amount      numeric(14, 2) NOT NULL,
    merchant_id text NOT NULL,
    score       double precision NOT NULL,
    -- features->>'model' records the model version that produced the score
    features    jsonb NOT NULL
);

-- The two indexes of the original lab: recent activity, and the riskiest recent transactions.
CREATE INDEX tx_scored_ts_idx ON tx_scored (ts DESC);
CREATE INDEX tx_scored_score_ts_idx ON tx_scored (score DESC, ts DESC);

-- Chargebacks and confirmed frauds arrive later than the transactions they label.
CREATE TABLE labels (
    txn_id      text PRIMARY KEY,
    is_fraud    boolean NOT NULL,
    labelled_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX labels_labelled_at_idx ON labels (labelled_at);

-- Which model version serves in which colour, and the history of swaps.
CREATE TABLE model_deployments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    colour      text NOT NULL CHECK (colour IN ('blue', 'green')),
    version     text NOT NULL,
    role        text NOT NULL CHECK (role IN ('champion', 'canary', 'shadow', 'retired')),
    traffic_pct smallint NOT NULL DEFAULT 100 CHECK (traffic_pct BETWEEN 0 AND 100),
    started_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz
);

-- What the data path needs beyond the lab's tables: feature state shared by consumer replicas,
-- label aggregates for merchant risk, the lake outbox, and consumer heartbeats.

-- Time-decayed card activity, the state behind the card features. Rows are locked (FOR UPDATE)
-- by the consumer that scores a card's transactions, so replicas never lose an update.
CREATE TABLE card_state (
    card_hash    text PRIMARY KEY,
    last_ts      double precision NOT NULL DEFAULT 0,  -- epoch seconds of the latest transaction
    n_total      bigint NOT NULL DEFAULT 0,
    count_1h     double precision NOT NULL DEFAULT 0,
    count_1d     double precision NOT NULL DEFAULT 0,
    count_7d     double precision NOT NULL DEFAULT 0,
    amount_7d    double precision NOT NULL DEFAULT 0,
    small_1h     double precision NOT NULL DEFAULT 0,
    home_country text
);

-- Labels per merchant and per day they became known: merchant risk at time t uses only the
-- days before t's day, so a label never informs a score made before it arrived.
CREATE TABLE merchant_label_daily (
    merchant_id text NOT NULL,
    day         date NOT NULL,
    n_labelled  integer NOT NULL,
    n_fraud     integer NOT NULL,
    PRIMARY KEY (merchant_id, day)
);


-- Committed rows waiting for the lake. The exporter claims rows into a numbered batch, writes
-- one object per partition named after the batch, and deletes the rows only after the objects
-- are stored: a crash in between re-exports the same rows under the same names.
CREATE TABLE lake_export_batches (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    rows       integer NOT NULL DEFAULT 0,
    objects    jsonb,
    done_at    timestamptz
);

CREATE TABLE lake_outbox (
    txn_id   text PRIMARY KEY,
    ts       timestamptz NOT NULL,
    batch_id bigint REFERENCES lake_export_batches (id)
);
CREATE INDEX lake_outbox_unclaimed_idx ON lake_outbox (ts) WHERE batch_id IS NULL;
CREATE INDEX lake_outbox_batch_idx ON lake_outbox (batch_id) WHERE batch_id IS NOT NULL;

-- One row per running consumer, updated with every committed batch.
CREATE TABLE consumer_status (
    consumer_id      text PRIMARY KEY,
    started_at       timestamptz NOT NULL DEFAULT now(),
    last_batch_at    timestamptz,
    last_batch_size  integer,
    last_batch_ms    double precision,
    processed_total  bigint NOT NULL DEFAULT 0,
    dead_letters     bigint NOT NULL DEFAULT 0,
    duplicates       bigint NOT NULL DEFAULT 0,
    model            text
);

-- When the score was committed: ingest-to-row latency is scored_at - ts.
ALTER TABLE tx_scored ADD COLUMN scored_at timestamptz NOT NULL DEFAULT clock_timestamp();

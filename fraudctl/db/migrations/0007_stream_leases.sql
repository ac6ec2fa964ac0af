-- Leases and checkpoints of a partitioned stream's shards (a Kinesis shard; a Kafka
-- partition is the same thing), kept beside the data so a batch's rows and its shard's
-- checkpoint commit in one transaction.
--
-- One row per shard the stream has had. A consumer owns a shard while its lease lasts (renewed
-- by its heartbeat); an expired lease is taken over. `checkpoint` is the position of the last
-- record whose batch committed: a new owner reads from just after it. A shard read to its end
-- (closed by a split or merge) is `finished`; a child is read only once its parents are.
CREATE TABLE stream_shards (
    stream      text NOT NULL,
    shard       text NOT NULL,
    parents     text[] NOT NULL DEFAULT '{}',
    owner       text,
    lease_until timestamptz,
    checkpoint  text,
    finished_at timestamptz,
    -- what the owner's last read said of its lag, and when it read
    behind_ms   bigint,
    read_at     timestamptz,
    PRIMARY KEY (stream, shard)
);

-- The consumers of each stream that are alive (renewed with their leases): the shards are
-- shared out evenly among them, so a new consumer gets its share without waiting for expiry.
CREATE TABLE stream_members (
    stream     text NOT NULL,
    member     text NOT NULL,
    seen_until timestamptz NOT NULL,
    PRIMARY KEY (stream, member)
);

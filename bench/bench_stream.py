"""Benchmark: consumer throughput on a Kinesis stream (moto server) against SQS on the same
moto server and against PGMQ, in the same run, with and without card locks on the stream.

Each run prefills its source with the same number of fresh transactions, then one consumer
(in this process, its defaults) drains it into the same local stack's PostgreSQL; the rate is
transactions scored per second from the consumer's start to the last commit. The moto server
runs in a process of its own, so it does not share this one's interpreter lock; it is moto's
own speed (one Python process answering every PutRecords, GetRecords, ReceiveMessage and
DeleteMessageBatch) that bounds the first two: the figures compare the consumers' work per
source, not Kinesis or SQS themselves.

    python bench/bench_stream.py [--messages N] [--sqs-messages N] [--shards N]

moto's SQS slows with the queue's length on every call (sending 4,000 messages, ten a call,
took it 296 s on this machine), so its runs are short (--sqs-messages, 500 by default): its
figure is moto's bound, not the consumer's.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))

from common import scratch_stack, traffic

from fraudctl.aws import kinesis, sqs
from fraudctl.aws.session import AwsSession
from fraudctl.config import load_settings
from fraudctl.local.objectstore import DirectoryStore
from fraudctl.local.stack import LocalStack
from fraudctl.pipeline.consumer import Consumer, ConsumerConfig
from fraudctl.pipeline.scoring import Deployment, RuleScorer
from fraudctl.pipeline.stream_consumer import StreamConsumer, StreamConsumerConfig
from fraudctl.runtime import Runtime
from fraudctl.targets import open_runtime


@contextmanager
def moto_server() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        yield url
    finally:
        process.terminate()
        process.wait()


def scored(runtime: Runtime, prefix: str) -> int:
    with runtime.pooled() as conn:
        row = conn.execute("SELECT count(*) FROM tx_scored WHERE txn_id LIKE %s",
                           (prefix + "%",)).fetchone()
    return int(row[0]) if row else 0


def drain(runtime: Runtime, worker: Consumer | StreamConsumer, prefix: str, count: int
          ) -> float:
    """Run ``worker`` until ``count`` transactions of the run are scored; the rate."""
    started = time.monotonic()
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        while scored(runtime, prefix) < count:
            if not thread.is_alive():
                raise RuntimeError(f"the consumer died: {worker.writer_error}")
            time.sleep(0.05)
        return count / (time.monotonic() - started)
    finally:
        worker.stop_event.set()
        thread.join()


def fill(send: Callable[[list[str]], None], messages: list[str], chunk: int = 5000) -> None:
    for first in range(0, len(messages), chunk):
        send(messages[first:first + chunk])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--sqs-messages", type=int, default=500)
    parser.add_argument("--shards", type=int, default=4)
    args = parser.parse_args()
    count = args.messages
    results: list[tuple[str, str, float]] = []
    with scratch_stack(workloads=False) as settings, moto_server() as endpoint:
        # (moto takes any credentials; a real account's are never read here)
        for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"),
                            ("AWS_DEFAULT_REGION", "us-east-1")):
            os.environ.setdefault(name, value)
        aws = AwsSession(load_settings({"target": "aws", "endpoint_url": endpoint,
                                        "region": "us-east-1"}, env={}))
        sqs.create_queue(aws, "bench-dlq", sqs.desired_dlq_attributes())
        sqs.create_queue(aws, "bench-tx", sqs.desired_queue_attributes(
            "arn:aws:sqs:us-east-1:123456789012:bench-dlq", 5, 60))
        kinesis.create(aws, "bench-tx", kinesis.desired_properties(
            load_settings({"stream_shards": str(args.shards)}, env={})))
        endpoint_db = LocalStack(settings).endpoint(admin=False)
        lake = DirectoryStore(Path(settings.stack_dir) / "bench-lake")
        seed = int(time.time()) % 100_000

        def run(source: str, locks: str, make: Callable[[Runtime], Consumer | StreamConsumer],
                runtime: Runtime, send: Callable[[list[str]], None], size: int = count
                ) -> None:
            nonlocal seed
            seed += 1
            messages = traffic(size, seed=seed, start=time.time() - 900)
            prefix = messages[0].split('"txn_id":"')[1][:8]
            fill(send, messages)
            rate = drain(runtime, make(runtime), prefix, size)
            results.append((f"{source}, {size:,} tx", locks, rate))
            Console(stderr=True).print(f"{source} ({locks}): {rate:,.0f} tx/s")

        deployment = Deployment(RuleScorer())
        local = open_runtime(settings, pool_size=4)
        on_sqs = Runtime(settings, sqs.SqsQueue(aws, "bench-tx"), sqs.SqsQueue(aws, "bench-dlq"),
                         lake, endpoint_db)
        stream = kinesis.KinesisStream(aws, "bench-tx")
        on_stream = Runtime(settings, None, sqs.SqsQueue(aws, "bench-dlq"), lake, endpoint_db,
                            stream=stream)
        queue_config = ConsumerConfig(consumer_id="bench")
        for _round in range(2):
            run("PGMQ (local)", "taken", lambda rt: Consumer(rt, deployment, queue_config),
                local, local.inbound.send_batch)
            run("SQS (moto)", "taken", lambda rt: Consumer(rt, deployment, queue_config),
                on_sqs, on_sqs.inbound.send_batch, args.sqs_messages)
            for locks in (None, True):
                run(f"Kinesis (moto, {args.shards} shards)",
                    "skipped (keyed by card)" if locks is None else "taken",
                    lambda rt, locks=locks: StreamConsumer(rt, deployment, StreamConsumerConfig(
                        "bench", card_locks=locks)),
                    on_stream, stream.send_batch)
        for runtime in (local, on_sqs, on_stream):
            runtime.close()

    table = Table(title="consumer throughput, two rounds (2 cores; the moto server in its "
                        "own process)")
    for column in ("source", "card locks", "round 1 tx/s", "round 2 tx/s", "mean"):
        table.add_column(column, justify="right" if "tx/s" in column or column == "mean"
                         else "left")
    seen: dict[tuple[str, str], list[float]] = {}
    for source, locks, rate in results:
        seen.setdefault((source, locks), []).append(rate)
    for (source, locks), rates in seen.items():
        table.add_row(source, locks, *(f"{r:,.0f}" for r in rates),
                      f"{sum(rates) / len(rates):,.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()

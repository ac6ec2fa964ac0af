"""Prometheus metrics of the pipeline's processes, each in its own registry."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

if TYPE_CHECKING:
    from fraudctl.pipeline.consumer import BatchOutcome
    from fraudctl.pipeline.heartbeat import Sample

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ConsumerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter("fraudctl_messages_received", "Messages received", registry=r)
        self.processed = Counter("fraudctl_transactions_processed",
                                 "Transactions scored and committed", registry=r)
        self.duplicates = Counter("fraudctl_transactions_duplicate",
                                  "Redelivered transactions already committed", registry=r)
        self.dead_lettered = Counter("fraudctl_messages_dead_lettered",
                                     "Messages sent to the dead-letter queue", registry=r)
        self.unexplained = Counter("fraudctl_alerts_unexplained",
                                   "High-risk rows stored without reasons (the batch's time "
                                   "budget for explaining ran out)", registry=r)
        self.failed_batches = Counter("fraudctl_batches_failed",
                                      "Batch commits that failed and were retried", registry=r)
        self.batch_latency = Histogram("fraudctl_batch_latency_seconds",
                                       "Receive-to-commit time of a batch",
                                       buckets=_LATENCY_BUCKETS, registry=r)
        self.lag = Gauge("fraudctl_queue_lag_seconds",
                         "Age of the oldest transaction in the last batch at commit", registry=r)
        self.last_commit = Gauge("fraudctl_last_commit_timestamp_seconds",
                                 "When the last batch was committed", registry=r)
        self.model = Info("fraudctl_model", "The model version scoring transactions",
                          registry=r)
        self.queue_visible = Gauge("fraudctl_queue_visible_messages",
                                   "Messages waiting, as the heartbeat last saw them",
                                   ["role"], registry=r)

        self.reviews_open = Gauge("fraudctl_review_backlog",
                                  "Transactions decided review that no analyst has resolved",
                                  registry=r)
        self.oldest_review = Gauge("fraudctl_review_oldest_age_seconds",
                                   "Age of the oldest open review (0: none open)", registry=r)

    def observe_sample(self, sample: Sample) -> None:
        """The heartbeat's sample: visible messages per queue role (queue, dead_letter), and
        the review queue's backlog."""
        for role, count in sample.visible.items():
            self.queue_visible.labels(role=role).set(count)
        self.reviews_open.set(sample.reviews_open)
        self.oldest_review.set(sample.oldest_review_age_s or 0.0)

    def model_info(self, version: str) -> None:
        self.model.info({"version": version})

    def observe(self, outcome: BatchOutcome, timestamps: Sequence[datetime]) -> None:
        self.processed.inc(outcome.scored)
        self.duplicates.inc(outcome.duplicates)
        self.dead_lettered.inc(outcome.dead_lettered)
        self.batch_latency.observe(outcome.latency_s)
        now = datetime.now(UTC)
        self.last_commit.set(now.timestamp())
        if timestamps:
            self.lag.set(max(0.0, (now - min(timestamps)).total_seconds()))


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("fraudctl_predict_requests", "Predictions served",
                                ["outcome"], registry=r)
        self.latency = Histogram("fraudctl_predict_latency_seconds", "Time to score one request",
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
                                 registry=r)
        self.model = Info("fraudctl_model", "The model version scoring requests", registry=r)

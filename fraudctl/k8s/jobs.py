"""`fraudctl retrain` on the aws target: a Job made from the retrain CronJob, followed to its end.

The Job is what `kubectl create job --from=cronjob/retrain` makes: the CronJob's job template,
a name of its own, the manual-instantiation annotation, and the CronJob as its owner (so the
CronJob's history limits clean it up). It runs in the cluster, next to the database and with
the pods' access, in the same image as the nightly run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fraudctl import errors, waits
from fraudctl.k8s import rollout
from fraudctl.k8s.cluster import Cluster

CRONJOB = "retrain"
POLL_S = 2.0


@dataclass(frozen=True)
class JobOutcome:
    name: str
    seconds: float


def job_from_cronjob(cronjob: dict[str, Any], name: str) -> dict[str, Any]:
    template = cronjob["spec"]["jobTemplate"]
    metadata = cronjob["metadata"]
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {
            "name": name, "namespace": metadata["namespace"],
            "labels": {**metadata.get("labels", {}),
                       **template.get("metadata", {}).get("labels", {})},
            "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                                 "name": metadata["name"], "uid": metadata.get("uid", ""),
                                 "controller": True}],
        },
        "spec": template["spec"],
    }


def _finished(job: dict[str, Any]) -> str | None:
    """"Complete", "Failed", or None while it runs."""
    for condition in job.get("status", {}).get("conditions", []) or []:
        if condition.get("status") == "True" and condition.get("type") in ("Complete",
                                                                            "Failed"):
            return str(condition["type"])
    return None


def run_retrain(cluster: Cluster, namespace: str, *, timeout_s: float) -> JobOutcome:
    cronjob = cluster.get("CronJob", CRONJOB, namespace)
    if cronjob is None:
        raise errors.StackNotFound(
            f"no retrain CronJob in namespace {namespace}",
            "run `fraudctl up --target aws` (with retrain_at not off) first")
    name = f"{CRONJOB}-manual-{datetime.now(UTC):%Y%m%d%H%M%S}"
    cluster.apply(job_from_cronjob(cronjob, name))
    started = time.monotonic()

    def probe() -> tuple[bool, str, None]:
        job = cluster.get("Job", name, namespace)
        if job is None:
            raise errors.CloudError(f"job {name} vanished while it ran")
        outcome = _finished(job)
        if outcome == "Failed":
            pods = cluster.list("Pod", namespace, f"job-name={name}")
            reason = next((p for p in map(rollout.pod_problem, pods) if p), None)
            condition = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
            raise errors.CloudError(
                f"retrain job {name} failed: {condition.get('message', condition.get('reason'))}"
                + (f"; {reason}" if reason else ""),
                f"`kubectl -n {namespace} logs job/{name}` shows its output")
        return outcome == "Complete", "running", None

    try:
        waits.wait_until(f"retrain job {name}", probe, timeout_s=timeout_s, interval_s=POLL_S)
    except errors.WaitTimeout:
        raise errors.WaitTimeout(f"retrain job {name} still running after {timeout_s:.0f} s",
                                 f"it goes on; follow it with `kubectl -n {namespace} "
                                 f"logs -f job/{name}`") from None
    return JobOutcome(name, time.monotonic() - started)

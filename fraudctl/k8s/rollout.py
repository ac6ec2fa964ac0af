"""Putting the rendered objects into a cluster and taking them out again.

- ``apply_all`` server-side applies every object, in render order (namespace first);
- ``wait_ready`` waits for Deployments to roll out, with a heartbeat (fraudctl.waits), and on
  time-out names
  the failing pod and its reason (ImagePullBackOff and its message, CrashLoopBackOff, …);
- ``delete_stack`` deletes every object labelled with the stack, then the namespace, and
  waits until the namespace is gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fraudctl import errors, waits
from fraudctl.k8s.cluster import Cluster, ObjectRef
from fraudctl.k8s.render import STACK_LABEL, Manifest

POLL_S = 2.0
# Kinds `down` deletes by label, most dependent first (the namespace goes last, and takes
# anything left with it).
DELETE_ORDER = ("ScaledObject", "PrometheusRule", "CronJob", "Job", "Deployment", "Service",
                "ConfigMap", "Secret", "ServiceAccount")
# Waiting reasons that mean a pod is still on its way, not stuck.
_STARTING = {"ContainerCreating", "PodInitializing"}


def apply_all(cluster: Cluster, manifests: Sequence[Manifest]) -> list[ObjectRef]:
    applied = []
    for manifest in manifests:
        cluster.apply(manifest.body)
        applied.append(ObjectRef(manifest.kind, manifest.name, manifest.namespace))
    return applied


def selector_of(deployment: dict[str, Any]) -> str:
    labels = deployment["spec"]["selector"]["matchLabels"]
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def rollout_state(deployment: dict[str, Any]) -> tuple[bool, str]:
    """(done, "2/2 available")."""
    wanted = int(deployment["spec"].get("replicas", 1))
    status = deployment.get("status", {})
    observed = status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
    updated = int(status.get("updatedReplicas", 0))
    available = int(status.get("availableReplicas", 0))
    total = int(status.get("replicas", 0))
    done = observed and updated >= wanted and available >= wanted and total == wanted
    return done, f"{available}/{wanted} available"


def pod_problem(pod: dict[str, Any]) -> str | None:
    """Why a pod is not running, in one line; None if nothing is wrong with it yet."""
    name = pod["metadata"]["name"]
    status = pod.get("status", {})
    for container in status.get("containerStatuses", []) or []:
        state = container.get("state", {})
        waiting = state.get("waiting")
        if waiting and waiting.get("reason") not in _STARTING:
            message = waiting.get("message", "").strip()
            return f"pod {name}: {waiting.get('reason')}" + (f": {message}" if message else "")
        terminated = state.get("terminated") or container.get("lastState", {}).get(
            "terminated")
        if terminated and terminated.get("exitCode", 0) != 0:
            return (f"pod {name}: container {container.get('name')} exited "
                    f"{terminated.get('exitCode')} ({terminated.get('reason', 'Error')})")
    for condition in status.get("conditions", []) or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"pod {name}: unschedulable: {condition.get('message', '').strip()}"
    return None


def _diagnose(cluster: Cluster, namespace: str, deployment: dict[str, Any]) -> str:
    pods = cluster.list("Pod", namespace, selector_of(deployment))
    problems = [p for p in (pod_problem(pod) for pod in pods) if p]
    if problems:
        return problems[0]
    return f"{len(pods)} pod(s), none failing yet (still starting?)"


def wait_ready(cluster: Cluster, namespace: str, names: Sequence[str], *,
               timeout_s: float) -> None:
    """Wait until every named Deployment has rolled out (a heartbeat on stderr meanwhile);
    on time-out, say which is not and why its pod is failing."""
    pending = list(names)
    waiting: dict[str, tuple[dict[str, Any], str]] = {}

    def probe() -> tuple[bool, str, None]:
        for name in list(pending):
            found = cluster.get("Deployment", name, namespace)
            if found is None:
                raise errors.CloudError(f"deployment {name} vanished while waiting for it")
            done, summary = rollout_state(found)
            if done:
                pending.remove(name)
                waiting.pop(name, None)
            else:
                waiting[name] = (found, summary)
        return not pending, ", ".join(f"{n} {s}" for n, (_, s) in waiting.items()), None

    try:
        waits.wait_until(f"rollout in namespace {namespace}", probe, timeout_s=timeout_s,
                         interval_s=POLL_S)
    except errors.WaitTimeout:
        name, (found, summary) = next(iter(waiting.items()))
        raise errors.WaitTimeout(
            f"deployment {name} not ready after {timeout_s:.0f} s ({summary}): "
            f"{_diagnose(cluster, namespace, found)}",
            f"`kubectl -n {namespace} describe deploy/{name}` shows more; fix it and run "
            "the command again (applying is idempotent)") from None


def delete_stack(cluster: Cluster, namespace: str, stack: str, *, timeout_s: float
                 ) -> list[ObjectRef]:
    """Delete everything labelled with the stack, then its namespace; wait until gone."""
    deleted: list[ObjectRef] = []
    if cluster.get("Namespace", namespace, None) is None:
        return deleted
    selector = f"{STACK_LABEL}={stack}"
    for kind in DELETE_ORDER:
        try:
            found = cluster.list(kind, namespace, selector)
        except errors.FraudctlError:
            continue                              # a custom kind this cluster does not serve
        for item in found:
            name = item["metadata"]["name"]
            if cluster.delete(kind, name, namespace):
                deleted.append(ObjectRef(kind, name, namespace))
    cluster.delete("Namespace", namespace, None)
    deleted.append(ObjectRef("Namespace", namespace, None))
    try:
        waits.wait_until(f"namespace {namespace} to go",
                         lambda: (cluster.get("Namespace", namespace, None) is None,
                                  "terminating", None),
                         timeout_s=timeout_s, interval_s=POLL_S)
    except errors.WaitTimeout:
        raise errors.WaitTimeout(
            f"namespace {namespace} still terminating after {timeout_s:.0f} s",
            f"`kubectl get ns {namespace} -o yaml` shows what holds it (finalizers)") from None
    return deleted

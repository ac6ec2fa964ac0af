"""Apply, wait, swap and delete against a fake Kubernetes API that records every request
(tests/k8s_fake.py; no cluster runs in CI): server-side apply as fraudctl, the exact request
sequence of a blue/green swap, and clear errors for a kubeconfig that points nowhere, a
namespace the user may not write, and an image that cannot be pulled."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from fraudctl import errors
from fraudctl.k8s import jobs, rollout
from fraudctl.k8s.cluster import Cluster
from fraudctl.k8s.render import render
from fraudctl.k8s.workloads import KubernetesWorkloads
from fraudctl.local import postgres as local_postgres
from fraudctl.model.deployment import DeploymentSpec
from tests.k8s_fake import FakeKubernetes
from tests.unit.test_k8s_render import CHALLENGER, CHAMPION, reference_context

NS = "fraudctl-demo"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"


@pytest.fixture
def fake() -> Iterator[FakeKubernetes]:
    server = FakeKubernetes().start()
    yield server
    server.stop()


@pytest.fixture
def cluster(fake: FakeKubernetes, tmp_path: Path) -> Iterator[Cluster]:
    connected = Cluster(str(fake.kubeconfig(tmp_path)))
    yield connected
    connected.close()


def deployed(fake: FakeKubernetes, cluster: Cluster) -> list[str]:
    manifests = render(reference_context())
    rollout.apply_all(cluster, manifests)
    running = [m.name for m in manifests
               if m.kind == "Deployment" and m.body["spec"].get("replicas", 1) > 0]
    rollout.wait_ready(cluster, NS, running, timeout_s=30)
    return running


def test_up_applies_every_object_server_side_as_fraudctl(fake: FakeKubernetes,
                                                         cluster: Cluster) -> None:
    running = deployed(fake, cluster)
    assert set(running) == {"consumer-blue", "api-blue", "exporter", "grafana"}
    patches = [(path, parse_qs(query)) for method, path, query in fake.requests
               if method == "PATCH"]
    assert len(patches) == len(render(reference_context()))
    assert patches[0][0] == f"/api/v1/namespaces/{NS}"              # the namespace first
    for path, query in patches:
        assert query == {"fieldManager": ["fraudctl"], "force": ["true"]}, path
    stored = fake.get(f"{DEPLOYMENTS}/consumer-blue")
    assert stored is not None and stored["metadata"]["labels"]["fraudctl.io/stack"] == "demo"
    before = len(fake.objects)
    deployed(fake, cluster)                                          # again: nothing new
    assert len(fake.objects) == before
    assert fake.get(f"{DEPLOYMENTS}/consumer-blue")["metadata"]["generation"] == 1  # type: ignore[index]


def test_a_swap_is_this_exact_sequence(fake: FakeKubernetes, cluster: Cluster) -> None:
    deployed(fake, cluster)
    fake.requests.clear()
    workloads = KubernetesWorkloads(cluster, reference_context(), replicas=2, timeout_s=30)
    assert workloads.running_colours() == {"blue"}
    workloads.start_colour("green", DeploymentSpec(champion=CHALLENGER))
    workloads.stop_colour("blue")
    assert fake.calls() == [
        f"GET {DEPLOYMENTS}/consumer-blue",                 # which colours run
        f"GET {DEPLOYMENTS}/consumer-green",
        f"PATCH {DEPLOYMENTS}/consumer-green",              # the idle colour, new models
        f"PATCH {DEPLOYMENTS}/api-green",
        f"GET {DEPLOYMENTS}/consumer-green",                # wait until both are ready
        f"GET {DEPLOYMENTS}/api-green",
        f"PATCH /api/v1/namespaces/{NS}/services/fraudctl-api",   # then it takes the traffic
        f"PATCH {DEPLOYMENTS}/consumer-blue",               # the old colour to zero
        f"PATCH {DEPLOYMENTS}/api-blue",
        f"GET /apis/keda.sh/v1alpha1/namespaces/{NS}/scaledobjects/consumer-blue",
        f"GET {DEPLOYMENTS}/consumer-blue",                 # until its pods have exited
        f"GET {DEPLOYMENTS}/api-blue",
    ]
    service = fake.get(f"/api/v1/namespaces/{NS}/services/fraudctl-api")
    assert service is not None and service["spec"]["selector"]["fraudctl.io/colour"] == "green"
    green = fake.get(f"{DEPLOYMENTS}/consumer-green")
    blue = fake.get(f"{DEPLOYMENTS}/consumer-blue")
    assert green is not None and blue is not None
    assert green["spec"]["replicas"] == 2 and blue["spec"]["replicas"] == 0
    assert green["spec"]["template"]["spec"]["containers"][0]["args"][-2:] == [
        "--model", CHALLENGER]
    # the stopped colour keeps its models, so scaling it down restarts nothing
    assert blue["spec"]["template"]["spec"]["containers"][0]["args"][-2:] == [
        "--model", CHAMPION]
    assert workloads.running_colours() == {"green"}


def test_an_image_that_cannot_be_pulled_times_out_with_the_pods_reason(
        fake: FakeKubernetes, cluster: Cluster) -> None:
    context = reference_context()
    fake.broken_images.add(context.image)
    rollout.apply_all(cluster, render(context))
    with pytest.raises(errors.WaitTimeout) as caught:
        rollout.wait_ready(cluster, NS, ["consumer-blue"], timeout_s=1)
    message = caught.value.message
    assert "deployment consumer-blue not ready after 1 s (0/2 available)" in message
    assert "pod consumer-blue-0: ImagePullBackOff: Back-off pulling image" in message
    assert f"kubectl -n {NS} describe deploy/consumer-blue" in (caught.value.hint or "")


def test_a_namespace_the_user_may_not_write_is_refused_before_anything_is_made(
        fake: FakeKubernetes, cluster: Cluster) -> None:
    fake.forbidden.add(NS)
    with pytest.raises(errors.PermissionDenied) as caught:
        rollout.apply_all(cluster, render(reference_context()))
    assert "forbidden" in caught.value.message and NS in caught.value.message
    assert fake.objects == {}                                # nothing half-made


def test_a_kubeconfig_that_points_nowhere_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="cannot use the kubeconfig"):
        Cluster(str(tmp_path / "missing"))
    nowhere = FakeKubernetes()
    path = nowhere.kubeconfig(tmp_path)
    port = local_postgres.free_port()
    path.write_text(path.read_text().replace(str(nowhere.port), str(port)))
    nowhere.server.server_close()
    cluster = Cluster(str(path), request_timeout_s=2)
    with pytest.raises(errors.EndpointUnreachable) as caught:
        rollout.apply_all(cluster, render(reference_context()))
    assert f"127.0.0.1:{port}" in caught.value.message
    assert "kubectl cluster-info" in (caught.value.hint or "")


def test_down_deletes_by_label_and_waits_for_the_namespace(fake: FakeKubernetes,
                                                           cluster: Cluster) -> None:
    deployed(fake, cluster)
    fake.requests.clear()
    deleted = rollout.delete_stack(cluster, NS, "demo", timeout_s=30)
    assert fake.objects == {}
    kinds = [ref.kind for ref in deleted]
    assert kinds[-1] == "Namespace" and kinds.count("Deployment") == 6
    lists = [query for method, path, query in fake.requests if method == "GET" and
             path.endswith("/deployments")]
    assert [parse_qs(q) for q in lists] == [{"labelSelector": ["fraudctl.io/stack=demo"]}]
    assert rollout.delete_stack(cluster, NS, "demo", timeout_s=30) == []   # already gone


def test_the_prometheus_rule_crd_is_detected(fake: FakeKubernetes, cluster: Cluster) -> None:
    assert not cluster.has_kind("monitoring.coreos.com/v1", "prometheusrules")
    fake.crds.add("monitoring.coreos.com/v1")
    assert cluster.has_kind("monitoring.coreos.com/v1", "prometheusrules")


def test_retrain_runs_a_job_made_from_the_cronjob_and_follows_it(
        fake: FakeKubernetes, cluster: Cluster) -> None:
    rollout.apply_all(cluster, render(reference_context()))
    outcome = jobs.run_retrain(cluster, NS, timeout_s=30)
    job = fake.get(f"/apis/batch/v1/namespaces/{NS}/jobs/{outcome.name}")
    assert job is not None and outcome.name.startswith("retrain-manual-")
    assert job["metadata"]["annotations"] == {"cronjob.kubernetes.io/instantiate": "manual"}
    assert job["metadata"]["ownerReferences"][0]["name"] == "retrain"
    cron = fake.get(f"/apis/batch/v1/namespaces/{NS}/cronjobs/retrain")
    assert cron is not None and job["spec"] == cron["spec"]["jobTemplate"]["spec"]

    fake.broken_images.add(reference_context().image)
    with pytest.raises(errors.CloudError) as caught:
        jobs.run_retrain(cluster, NS, timeout_s=30)
    assert "backoff limit" in caught.value.message
    assert "ImagePullBackOff" in caught.value.message


def test_retrain_without_the_cronjob_says_how_to_get_it(cluster: Cluster) -> None:
    with pytest.raises(errors.StackNotFound, match="no retrain CronJob"):
        jobs.run_retrain(cluster, NS, timeout_s=5)

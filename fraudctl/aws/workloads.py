"""The aws target's Kubernetes workloads, as steps of `up` and `down`.

`up` renders the manifests from the stack's real values (the RDS endpoint and the app role's
secret from Secrets Manager, the image, the queue URL, a Grafana admin password generated once
into Secrets Manager), applies them server-side as fraudctl, and waits for the rollouts. The
rendered objects' digest is kept in the state: a second `up` with nothing changed and every
Deployment rolled out plans nothing. `down` deletes the stack's objects by label, then its
namespace, and waits.

Without a kubeconfig (no --kubeconfig, no KUBECONFIG, no ~/.kube/config) the AWS resources are
still made, and `up` says the workloads were not deployed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from fraudctl import errors, naming
from fraudctl import image as container_image
from fraudctl.aws import sqs
from fraudctl.aws.stack import APP_SECRET, READER_SECRET, AwsStack
from fraudctl.config import Settings
from fraudctl.k8s import rollout
from fraudctl.k8s.cluster import Cluster
from fraudctl.k8s.render import (
    FIELD_MANAGER,
    Database,
    Manifest,
    RenderContext,
    context_for,
    render,
)
from fraudctl.model import deployment
from fraudctl.provision.plan import Plan, Step, StepResult
from fraudctl.provision.secrets import new_password
from fraudctl.state import StackState

GRAFANA_PURPOSE = "grafana-admin"
STATE_KEY = "k8s"
ROLLOUT_TIMEOUT_S = 600.0
DELETE_TIMEOUT_S = 300.0
NO_KUBECONFIG = ("no kubeconfig found: the Kubernetes workloads were not deployed; pass "
                 "--kubeconfig (or set KUBECONFIG) and run `fraudctl up` again")


def kubeconfig_path(settings: Settings) -> str | None:
    if settings.kubeconfig:
        if not Path(settings.kubeconfig).exists():
            raise errors.ConfigError(f"kubeconfig {settings.kubeconfig} does not exist",
                                     "on k3s it is /etc/rancher/k3s/k3s.yaml on the server")
        return settings.kubeconfig
    if os.environ.get("KUBECONFIG"):
        return os.environ["KUBECONFIG"]
    default = Path.home() / ".kube" / "config"
    return str(default) if default.exists() else None


def connect(settings: Settings) -> Cluster | None:
    path = kubeconfig_path(settings)
    return None if path is None else Cluster(path, settings.kube_context)


def live_context(settings: Settings, stack: AwsStack, cluster: Cluster) -> RenderContext:
    names = stack.names
    image = settings.image or _state(settings).value(container_image.STATE_KEY)
    if not image:
        raise errors.ConfigError("the aws target's workloads need a container image",
                                 "build and push one with `fraudctl image build --push`, or "
                                 "give --image REGISTRY/REPOSITORY:TAG")
    app = stack.secrets.get(names.secret(APP_SECRET))
    reader = stack.secrets.get(names.secret(READER_SECRET))
    if not app.get("host"):
        raise errors.StackNotFound("the RDS instance has no endpoint yet")
    grafana = stack.secrets.get(names.secret(GRAFANA_PURPOSE))
    return context_for(
        settings, deployment.serving(_state(settings)), region=stack.aws.region,
        image=image,
        database=Database(app["host"], int(app["port"]), naming.DB_NAME, app["username"],
                          app["password"]),
        reader=Database(app["host"], int(app["port"]), naming.DB_NAME, reader["username"],
                        reader["password"]),
        bucket=stack.bucket, queue=names.queue, dead_letter_queue=names.dead_letter_queue,
        grafana_admin_password=grafana["password"],
        queue_url=sqs.queue_url(stack.aws, names.queue) or "",
        prometheus_rule_crd=cluster.has_kind("monitoring.coreos.com/v1", "prometheusrules"))


def _state(settings: Settings) -> StackState:
    return StackState.load(settings.stack_dir, stack=settings.stack, target=settings.target)


def digest(manifests: list[Manifest]) -> str:
    return hashlib.sha256("---\n".join(m.yaml() for m in manifests).encode()).hexdigest()


def _running(manifests: list[Manifest]) -> list[str]:
    return [m.name for m in manifests if m.kind == "Deployment"
            and int(m.body["spec"].get("replicas", 1)) > 0]


def _rolled_out(cluster: Cluster, namespace: str, names: list[str]) -> bool:
    for name in names:
        found = cluster.get("Deployment", name, namespace)
        if found is None or not rollout.rollout_state(found)[0]:
            return False
    return True


def plan_workloads(plan: Plan, settings: Settings, stack: AwsStack, *, ready: bool) -> None:
    cluster = connect(settings)
    if cluster is None:
        plan.notes.append(NO_KUBECONFIG)
        return
    name = stack.names.secret(GRAFANA_PURPOSE)
    grafana_exists = stack.secrets.exists(name)
    if not grafana_exists:
        def create_grafana_secret() -> StepResult:
            created = stack.secrets.create(
                name, {"username": "fraudctl-admin", "password": new_password()}
            )
            return {"name": name, "created": created}

        plan.add(Step("secret", name, "create", "generated Grafana admin password",
                      create_grafana_secret, ("secretsmanager:CreateSecret",
                                              "secretsmanager:RestoreSecret",
                                              "secretsmanager:PutSecretValue"),
                      f"secret/{GRAFANA_PURPOSE}",
                      desired={"name": name, "username": "fraudctl-admin",
                               "password": "generated on apply, never shown"}))
    else:
        plan.found(f"secret/{GRAFANA_PURPOSE}", f"secret {name}", name=name)
    namespace = settings.k8s_namespace
    if ready and grafana_exists:
        manifests = render(live_context(settings, stack, cluster))
        current = {"namespace": namespace, "digest": digest(manifests)}
        recorded = _state(settings).resource(STATE_KEY) or {}
        same = all(recorded.get(key) == value for key, value in current.items())
        if same and _rolled_out(cluster, namespace, _running(manifests)):
            plan.found(STATE_KEY, f"kubernetes namespace {namespace}", **current)
            return

    def deploy() -> StepResult:
        manifests = render(live_context(settings, stack, cluster))
        rollout.apply_all(cluster, manifests)
        rollout.wait_ready(cluster, namespace, _running(manifests),
                           timeout_s=ROLLOUT_TIMEOUT_S)
        return {"namespace": namespace, "digest": digest(manifests)}

    plan.add(Step("kubernetes namespace", namespace, "update",
                  f"apply the workloads server-side at {cluster.server}, wait for rollouts",
                  deploy, ("kubernetes:apply", "kubernetes:get"), STATE_KEY,
                  desired={"namespace": namespace, "rolled_out": True,
                           "field_manager": FIELD_MANAGER}))


def plan_delete_workloads(plan: Plan, settings: Settings) -> None:
    cluster = connect(settings)
    if cluster is None:
        plan.notes.append("no kubeconfig found: Kubernetes objects (if any) were left; pass "
                          "--kubeconfig to delete them")
        return
    namespace = settings.k8s_namespace
    if cluster.get("Namespace", namespace, None) is None:
        return
    plan.add(Step("kubernetes namespace", namespace, "delete",
                  "every object labelled with the stack, then the namespace",
                  lambda: {"deleted": len(rollout.delete_stack(
                      cluster, namespace, settings.stack, timeout_s=DELETE_TIMEOUT_S))},
                  ("kubernetes:delete",), STATE_KEY))

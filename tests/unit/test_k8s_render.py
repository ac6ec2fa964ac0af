"""The Kubernetes manifests: schema-valid (kubernetes-validate --strict), a snapshot of a
reference stack, labels and selectors, locked-down pods, blue/green state, and Grafana built
from the same named queries as the local dashboard."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import jinja2
import kubernetes_validate
import pytest
import yaml

from fraudctl.config import Settings, load_settings
from fraudctl.dashboard import panels
from fraudctl.k8s import render as k8s
from fraudctl.model.deployment import DeploymentSpec, Serving
from tests.conftest import invoke

# k3s's current minor and the oldest the manifests promise (CronJob timeZone is GA in 1.27).
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")
# Custom resources have no schema in Kubernetes itself; their shape is checked by hand below.
CUSTOM_KINDS = {"ScaledObject", "PrometheusRule"}
SNAPSHOT = Path(__file__).resolve().parents[1] / "snapshots" / "k8s-reference.yaml"
CHAMPION = "20261101T030000-0a1b2c3d"
RDS_HOST = "fraudctl-demo.abc.eu-west-1.rds.amazonaws.com"
CHALLENGER = "20261108T030000-4e5f6a7b"


def reference_settings(**overrides: Any) -> Settings:
    return dataclasses.replace(load_settings({"stack": "demo", "target": "aws",
                                              "region": "eu-west-1"}, env={}), **overrides)


def reference_context(serving: Serving | None = None, **overrides: Any) -> k8s.RenderContext:
    settings = reference_settings(**overrides)
    serving = serving or Serving("blue", {"blue": DeploymentSpec(champion=CHAMPION),
                                          "green": None}, [])
    return k8s.context_for(
        settings, serving, region="eu-west-1",
        image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/fraudctl:0.1.0",
        database=k8s.Database(RDS_HOST, 5432, "fraud", "fraudctl_app", "reference-password"),
        reader=k8s.Database(RDS_HOST, 5432, "fraud", "fraudctl_reader", "reference-reader"),
        bucket="fraudctl-demo-123456789012-eu-west-1", queue="fraudctl-demo-tx",
        dead_letter_queue="fraudctl-demo-tx-dlq", grafana_admin_password="reference-grafana",
        queue_url="https://sqs.eu-west-1.amazonaws.com/123456789012/fraudctl-demo-tx")


def by_name(manifests: list[k8s.Manifest]) -> dict[str, dict[str, Any]]:
    return {f"{m.kind}/{m.name}": m.body for m in manifests}


def pod_specs(manifests: list[k8s.Manifest]) -> dict[str, dict[str, Any]]:
    specs = {}
    for m in manifests:
        if m.kind == "Deployment":
            specs[m.name] = m.body["spec"]["template"]["spec"]
        elif m.kind == "CronJob":
            specs[m.name] = m.body["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return specs


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", ["reference", "green-canary", "keda-no-retrain",
                                     "kinesis-keda"])
def test_every_manifest_is_valid_for_the_kubernetes_api_strictly(version: str,
                                                                 variant: str) -> None:
    context = {
        "reference": reference_context(),
        "green-canary": reference_context(Serving("green", {
            "blue": DeploymentSpec(champion=CHAMPION),
            "green": DeploymentSpec(champion=CHAMPION, challenger=CHALLENGER, mode="canary",
                                    canary_pct=10)}, [])),
        "keda-no-retrain": reference_context(keda_max_replicas=8, retrain_at="off"),
        "kinesis-keda": reference_context(keda_max_replicas=8, ingest="kinesis",
                                          stream_shards=4),
    }[variant]
    manifests = k8s.render(context)
    checked = 0
    for manifest in manifests:
        if manifest.kind in CUSTOM_KINDS:
            continue
        # strict: an unknown field anywhere is an error, as `kubernetes-validate --strict`
        kubernetes_validate.validate(manifest.body, version, strict=True)
        checked += 1
    assert checked >= 15


def test_the_reference_stack_renders_as_the_snapshot() -> None:
    """A change to any manifest shows here as a diff of YAML. After a deliberate change,
    regenerate with UPDATE_SNAPSHOTS=1."""
    rendered = "---\n".join(m.yaml() for m in k8s.render(reference_context()))
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(rendered)
    assert rendered == SNAPSHOT.read_text()


def test_objects_are_labelled_namespaced_and_in_apply_order() -> None:
    manifests = k8s.render(reference_context())
    assert manifests[0].kind == "Namespace" and manifests[0].name == "fraudctl-demo"
    for m in manifests:
        assert m.body["metadata"]["labels"][k8s.STACK_LABEL] == "demo", m.file_name
        if m.kind != "Namespace":
            assert m.namespace == "fraudctl-demo", m.file_name
    names = [f"{m.kind}/{m.name}" for m in manifests]
    assert len(names) == len(set(names))
    # what pods mount or read exists before the pods
    first_workload = min(i for i, m in enumerate(manifests) if m.kind == "Deployment")
    assert {"Secret/fraudctl-db", "ConfigMap/fraudctl-settings",
            "ServiceAccount/fraudctl"} <= set(names[:first_workload])


def test_blue_green_follows_the_serving_state() -> None:
    blue = by_name(k8s.render(reference_context()))
    assert blue["Service/fraudctl-api"]["spec"]["selector"]["fraudctl.io/colour"] == "blue"
    assert blue["Deployment/consumer-blue"]["spec"]["replicas"] == 2
    assert blue["Deployment/consumer-green"]["spec"]["replicas"] == 0
    consumer = blue["Deployment/consumer-blue"]["spec"]["template"]["spec"]["containers"][0]
    assert consumer["args"][-2:] == ["--model", CHAMPION]

    green = by_name(k8s.render(reference_context(Serving("green", {
        "blue": DeploymentSpec(champion=CHAMPION),
        "green": DeploymentSpec(champion=CHALLENGER)}, [DeploymentSpec(champion=CHAMPION)]))))
    assert green["Service/fraudctl-api"]["spec"]["selector"]["fraudctl.io/colour"] == "green"
    assert green["Deployment/consumer-green"]["spec"]["replicas"] == 2
    assert green["Deployment/consumer-blue"]["spec"]["replicas"] == 0
    assert green["Deployment/api-green"]["spec"]["replicas"] == 1
    args = green["Deployment/api-green"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-2:] == ["--model", CHALLENGER]


def test_pods_are_locked_down_and_bounded() -> None:
    manifests = k8s.render(reference_context())
    specs = pod_specs(manifests)
    assert {"consumer-blue", "api-blue", "exporter", "retrain", "grafana"} <= set(specs)
    for name, spec in specs.items():
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert container["resources"]["requests"] and container["resources"]["limits"]
        secrets = [v for v in spec.get("volumes", []) if "secret" in v]
        assert all(v["secret"]["defaultMode"] == 0o400 for v in secrets), name
    for name in ("consumer-blue", "api-blue", "exporter"):
        container = specs[name]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    account = by_name(manifests)["ServiceAccount/fraudctl"]
    assert account["automountServiceAccountToken"] is False
    assert not [m for m in manifests if m.kind in ("Role", "ClusterRole", "RoleBinding")]


def test_the_retrain_cronjob_runs_nightly_in_utc_one_at_a_time() -> None:
    cron = by_name(k8s.render(reference_context()))["CronJob/retrain"]["spec"]
    assert (cron["schedule"], cron["timeZone"], cron["concurrencyPolicy"]) == (
        "0 3 * * *", "Etc/UTC", "Forbid")
    container = cron["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][0] == "retrain"
    assert "CronJob/retrain" not in by_name(k8s.render(reference_context(retrain_at="off")))


def test_keda_scales_the_active_colour_on_queue_depth() -> None:
    objects = by_name(k8s.render(reference_context(keda_max_replicas=8)))
    scaled = objects["ScaledObject/consumer-blue"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "consumer-blue"
    assert scaled["spec"]["maxReplicaCount"] == 8
    assert scaled["spec"]["triggers"][0]["type"] == "aws-sqs-queue"
    assert "replicas" not in objects["Deployment/consumer-blue"]["spec"]   # KEDA owns it
    assert objects["Deployment/consumer-green"]["spec"]["replicas"] == 0


def test_on_a_stream_keda_scales_on_iterator_age_and_never_past_the_shards() -> None:
    objects = by_name(k8s.render(reference_context(keda_max_replicas=8, ingest="kinesis",
                                                   stream_shards=4)))
    scaled = objects["ScaledObject/consumer-blue"]["spec"]
    assert scaled["maxReplicaCount"] == 4           # a fifth replica would own no shard
    [trigger] = scaled["triggers"]
    assert trigger["type"] == "aws-cloudwatch"
    assert trigger["metadata"]["metricName"] == "GetRecords.IteratorAgeMilliseconds"
    assert trigger["metadata"]["dimensionValue"] == "demo-tx"
    assert trigger["metadata"]["metricStat"] == "Maximum"
    assert objects["ConfigMap/fraudctl-settings"]["data"]["FRAUDCTL_INGEST"] == "kinesis"
    on_demand = by_name(k8s.render(reference_context(keda_max_replicas=8, ingest="kinesis",
                                                     stream_shards=0)))
    assert on_demand["ScaledObject/consumer-blue"]["spec"]["maxReplicaCount"] == 8


def test_the_alert_is_a_prometheus_rule_when_the_crd_exists() -> None:
    plain = by_name(k8s.render(reference_context()))
    rules = yaml.safe_load(plain["ConfigMap/fraudctl-alerts"]["data"]["fraudctl-rules.yaml"])
    assert rules["groups"][0]["rules"][0]["alert"] == "FraudConsumerDown"
    assert "Runbook" in rules["groups"][0]["rules"][0]["annotations"]["runbook"]
    context = dataclasses.replace(reference_context(), prometheus_rule_crd=True)
    operator = by_name(k8s.render(context))
    rule = operator["PrometheusRule/fraudctl-alerts"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == rules["groups"]
    assert "ConfigMap/fraudctl-alerts" not in operator


def test_grafana_is_provisioned_from_the_dashboards_named_queries() -> None:
    objects = by_name(k8s.render(reference_context()))
    board = json.loads(objects["ConfigMap/grafana-dashboards"]["data"]["fraudctl.json"])
    shipped = {sql for _, sql in panels.render_all()}
    used = {target["rawSql"] for panel in board["panels"] for target in panel["targets"]}
    assert used == shipped                               # every panel, and nothing else
    titles = " ".join(panel["title"] for panel in board["panels"])
    for expected in ("High-risk transactions per minute", "last 15 min", "Model output",
                     "Top risky merchants", "Queue depth", "Dead letters", "Consumer lag",
                     "Throughput"):
        assert expected in titles
    datasource = yaml.safe_load(
        objects["ConfigMap/grafana-provisioning"]["data"]["datasource.yaml"])["datasources"][0]
    assert datasource["secureJsonData"]["password"] == "$FRAUDCTL_DB_PASSWORD"
    assert datasource["user"] == "fraudctl_reader"            # read-only: Grafana never writes
    assert datasource["jsonData"]["sslmode"] == "require"
    env = {e["name"]: e for e in
           objects["Deployment/grafana"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["GF_SECURITY_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == \
        "fraudctl-grafana"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"]["value"] == "false"
    admin = objects["Secret/fraudctl-grafana"]["stringData"]
    assert admin["admin-password"] == "reference-grafana" and admin["admin-user"] != "admin"
    assert admin["db-password"] == "reference-reader"
    assert env["FRAUDCTL_DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "fraudctl-grafana", "key": "db-password"}
    assert set(objects["Secret/fraudctl-db"]["stringData"]) == {"db-app.json"}


def test_templates_refuse_undefined_values() -> None:
    with pytest.raises(jinja2.UndefinedError):
        k8s._environment().from_string("{{ nowhere }}").render()


def test_render_before_up_marks_what_only_up_knows(cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    result = invoke(cli, "render", "--stack", "demo", "--region", "eu-west-1",
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    files = {p.name: p.read_text() for p in out.iterdir()}
    assert "deployment-consumer-blue.yaml" in files and "cronjob-retrain.yaml" in files
    secret = json.loads(yaml.safe_load(files["secret-fraudctl-db.yaml"])["stringData"][
        "db-app.json"])
    assert secret["password"].startswith("<set by fraudctl up: Secrets Manager")
    grafana_secret = yaml.safe_load(files["secret-fraudctl-grafana.yaml"])["stringData"]
    assert grafana_secret["admin-password"] == "<set by fraudctl up: a generated password>"
    assert grafana_secret["db-password"].startswith("<set by fraudctl up: Secrets Manager")
    consumer = yaml.safe_load(files["deployment-consumer-blue.yaml"])
    assert consumer["spec"]["template"]["spec"]["containers"][0]["image"].startswith("<set by")
    assert consumer["spec"]["template"]["spec"]["containers"][0]["args"][-2:] == [
        "--model", "rules-v1"]
    stdout = invoke(cli, "render", "--stack", "demo", "--region", "eu-west-1",
                    "--image", "registry.example/fraudctl:1")
    assert stdout.exit_code == 0
    kinds = [d["kind"] for d in yaml.safe_load_all(stdout.stdout)]
    assert kinds[0] == "Namespace" and len(kinds) >= 15
    assert "registry.example/fraudctl:1" in stdout.stdout
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    refused = invoke(cli, "render", "--out", str(not_a_folder))
    assert refused.exit_code == 2 and "is a file" in refused.stderr

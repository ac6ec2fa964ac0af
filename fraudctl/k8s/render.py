"""The Kubernetes manifests of a stack: a pure function of its settings and serving state.

``render(context)`` fills ``templates/k8s/*.yaml.j2`` (jinja2, an undefined variable is an
error) and returns the objects in apply order. It reads nothing and calls nothing: what only
`up` can know (the database host, the account's image registry, the secrets) arrives in the
:class:`RenderContext`, or, for `fraudctl render` before the first `up`, as a value marked
``<set by fraudctl up: …>`` so nobody mistakes it for the real one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined

from fraudctl import __version__, naming
from fraudctl.config import Settings
from fraudctl.k8s import alerts, grafana
from fraudctl.model.deployment import COLOURS, DeploymentSpec, Serving

# Labels every object carries: `down` deletes by the stack label, `up` applies as fraudctl.
STACK_LABEL = "fraudctl.io/stack"
FIELD_MANAGER = "fraudctl"
HEALTH_PORT = 8080
API_PORT = 8000
GRAFANA_PORT = 3000
DB_SECRET_PATH = "/var/run/fraudctl/db"  # noqa: S105 (a mount path, not a secret)
DB_SECRET_KEY = "db-app.json"  # noqa: S105


def marked(what: str) -> str:
    """A value only `up` can know, in the form `fraudctl render` writes it before then."""
    return f"<set by fraudctl up: {what}>"


@dataclass(frozen=True)
class ColourPlan:
    name: str
    spec: DeploymentSpec | None      # None: this colour serves nothing (scaled to zero)
    consumers: int
    apis: int

    @property
    def model_args(self) -> list[str]:
        return self.spec.argv() if self.spec is not None else []


@dataclass(frozen=True)
class Database:
    host: str
    port: int
    name: str
    user: str
    password: str

    @property
    def secret_json(self) -> str:
        """The app role's secret document, as Secrets Manager holds it and the pods read it."""
        return json.dumps({"host": self.host, "port": self.port, "dbname": self.name,
                           "username": self.user, "password": self.password})


@dataclass(frozen=True)
class RenderContext:
    stack: str
    namespace: str
    region: str
    image: str
    active_colour: str
    colours: tuple[ColourPlan, ...]
    database: Database               # the app role: what the pipeline's pods log in as
    reader: Database                 # the read-only role: Grafana's datasource
    bucket: str
    queue: str
    dead_letter_queue: str
    lake_format: str
    retrain_schedule: str | None     # cron, in UTC; None: no nightly retrain
    grafana_admin_password: str
    keda_max_replicas: int = 0
    queue_url: str = ""
    # ingest "kinesis": the stream the consumers lease shards of (KEDA scales on its iterator
    # age, and never beyond its shards when they are provisioned)
    ingest: str = "sqs"
    stream: str = ""
    stream_shards: int = 0
    service_account_role_arn: str | None = None
    prometheus_rule_crd: bool = False
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """One object: its identity for apply and delete, and its document."""

    api_version: str
    kind: str
    name: str
    namespace: str | None
    body: dict[str, Any]

    @property
    def file_name(self) -> str:
        return f"{self.kind.lower()}-{self.name}.yaml"

    def yaml(self) -> str:
        return str(yaml.safe_dump(self.body, sort_keys=False, width=100))


def cron_of(retrain_at: str) -> str | None:
    if retrain_at == "off":
        return None
    hour, minute = retrain_at.split(":")
    return f"{int(minute)} {int(hour)} * * *"


def colour_plans(serving: Serving, replicas: int) -> tuple[ColourPlan, ...]:
    """The active colour runs; the other is scaled to zero until a swap brings it up."""
    plans = []
    for colour in COLOURS:
        spec = serving.colours.get(colour)
        active = colour == serving.active
        plans.append(ColourPlan(colour, spec if spec is not None else
                                (serving.spec if active else None),
                                replicas if active else 0, 1 if active else 0))
    return tuple(plans)


def context_for(settings: Settings, serving: Serving, *, region: str, image: str,
                database: Database, reader: Database, bucket: str, queue: str,
                dead_letter_queue: str,
                grafana_admin_password: str, queue_url: str = "",
                prometheus_rule_crd: bool = False) -> RenderContext:
    return RenderContext(
        stack=settings.stack, namespace=settings.k8s_namespace, region=region, image=image,
        active_colour=serving.active,
        colours=colour_plans(serving, settings.consumer_replicas),
        database=database, reader=reader, bucket=bucket, queue=queue,
        dead_letter_queue=dead_letter_queue, lake_format=settings.lake_format,
        retrain_schedule=cron_of(settings.retrain_at),
        grafana_admin_password=grafana_admin_password,
        keda_max_replicas=settings.keda_max_replicas, queue_url=queue_url,
        ingest=settings.ingest or "sqs", stream=naming.names_for(settings).stream,
        stream_shards=settings.stream_shards or 0,
        prometheus_rule_crd=prometheus_rule_crd,
        labels={STACK_LABEL: settings.stack, "app.kubernetes.io/part-of": "fraudctl",
                "app.kubernetes.io/managed-by": FIELD_MANAGER})


def _block(text: str, indent: int) -> str:
    """A multi-line value under a YAML ``|`` key: every line after the first indented."""
    return ("\n" + " " * indent).join(str(text).splitlines())


def _environment() -> Environment:
    # YAML, not HTML: escaping would corrupt it. Every value goes in through the `q` filter, a
    # JSON literal (valid YAML), so quoting is never left to chance.
    env = Environment(loader=PackageLoader("fraudctl", "templates/k8s"),
                      undefined=StrictUndefined, keep_trailing_newline=True,
                      trim_blocks=True, lstrip_blocks=True,
                      autoescape=False)  # noqa: S701
    env.filters["q"] = json.dumps
    env.filters["block"] = _block
    return env


def _template_names() -> list[str]:
    folder = resources.files("fraudctl") / "templates" / "k8s"
    return sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".yaml.j2"))


def render(context: RenderContext) -> list[Manifest]:
    env = _environment()
    values = {
        "c": context, "version": __version__, "health_port": HEALTH_PORT,
        "api_port": API_PORT, "grafana_port": GRAFANA_PORT,
        "db_secret_path": DB_SECRET_PATH, "db_secret_key": DB_SECRET_KEY,
        "grafana_dashboard": json.dumps(grafana.dashboard(context.stack), indent=1),
        "grafana_datasource": grafana.datasource_yaml(context),
        "alert_rules": alerts.rules_yaml(context.stack, context.namespace),
        "alert_groups": alerts.rule_groups(context.stack, context.namespace),
    }
    manifests = []
    for name in _template_names():
        rendered = env.get_template(name).render(**values)
        for document in yaml.safe_load_all(rendered):
            if not document:
                continue
            metadata = document.setdefault("metadata", {})
            metadata["labels"] = {**context.labels, **metadata.get("labels", {})}
            manifests.append(Manifest(document["apiVersion"], document["kind"],
                                      metadata["name"], metadata.get("namespace"), document))
    return manifests


def review_context(settings: Settings, serving: Serving, image: str | None = None
                   ) -> RenderContext:
    """What `fraudctl render` shows before (or without) `up`: every name is the real one;
    what only `up` knows is a marked value, and no secret is ever written out."""
    names = naming.names_for(settings)
    region = settings.region or marked("the stack's region")
    host = marked(f"the endpoint of RDS instance {names.db_instance}")
    return context_for(
        settings, serving, region=region,
        image=image or marked("the image `fraudctl image build --push` made"),
        database=Database(host, 5432, naming.DB_NAME, naming.DB_APP_USER,
                          marked(f"Secrets Manager {names.secret(naming.DB_APP_PURPOSE)}")),
        reader=Database(host, 5432, naming.DB_NAME, naming.DB_READER_USER,
                        marked(f"Secrets Manager {names.secret(naming.DB_READER_PURPOSE)}")),
        bucket=marked("fraudctl-<stack>-<account>-<region>"), queue=names.queue,
        dead_letter_queue=names.dead_letter_queue,
        grafana_admin_password=marked("a generated password"),
        queue_url=marked(f"the URL of SQS queue {names.queue}"))

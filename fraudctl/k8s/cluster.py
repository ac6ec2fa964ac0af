"""A Kubernetes cluster, as fraudctl uses it: server-side apply, read, list by label, scale,
delete. The only module that imports the kubernetes client.

The client reads the kubeconfig (tokens, client certificates, exec plugins such as EKS's) and
speaks TLS; the objects are addressed by their REST paths, built from apiVersion and kind, so
every kind fraudctl renders goes through the same few calls. Failures become one-line errors:
a kubeconfig that points nowhere, a namespace the user may not write, an object that is not
there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from fraudctl import errors
from fraudctl.k8s.render import FIELD_MANAGER

APPLY_PATCH = "application/apply-patch+yaml"

# kind -> (plural, namespaced) for what fraudctl renders and reads
KINDS: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "ServiceAccount": ("serviceaccounts", True),
    "Secret": ("secrets", True),
    "ConfigMap": ("configmaps", True),
    "Service": ("services", True),
    "Pod": ("pods", True),
    "Event": ("events", True),
    "Deployment": ("deployments", True),
    "CronJob": ("cronjobs", True),
    "Job": ("jobs", True),
    "ScaledObject": ("scaledobjects", True),
    "PrometheusRule": ("prometheusrules", True),
    "CustomResourceDefinition": ("customresourcedefinitions", False),
}
API_VERSIONS = {
    "Namespace": "v1", "ServiceAccount": "v1", "Secret": "v1", "ConfigMap": "v1",
    "Service": "v1", "Pod": "v1", "Event": "v1", "Deployment": "apps/v1",
    "CronJob": "batch/v1", "Job": "batch/v1", "ScaledObject": "keda.sh/v1alpha1",
    "PrometheusRule": "monitoring.coreos.com/v1",
    "CustomResourceDefinition": "apiextensions.k8s.io/v1",
}


class NotFound(errors.FraudctlError):
    """The object (or its kind) is not in the cluster."""


def path_of(kind: str, namespace: str | None, name: str | None = None,
            api_version: str | None = None) -> str:
    plural, namespaced = KINDS[kind]
    version = api_version or API_VERSIONS[kind]
    prefix = "/api/v1" if version == "v1" else f"/apis/{version}"
    path = f"{prefix}/namespaces/{namespace}/{plural}" if namespaced else f"{prefix}/{plural}"
    return f"{path}/{name}" if name else path


@dataclass(frozen=True)
class ObjectRef:
    kind: str
    name: str
    namespace: str | None

    def __str__(self) -> str:
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f"{self.kind.lower()} {self.name}{where}"


class Cluster:
    def __init__(self, kubeconfig: str | None = None, context: str | None = None,
                 request_timeout_s: float = 15.0) -> None:
        try:
            self._api = kube_config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context)
        except (ConfigException, OSError) as exc:
            raise errors.ConfigError(
                f"cannot use the kubeconfig: {str(exc).splitlines()[0]}",
                "point --kubeconfig (or KUBECONFIG) at the cluster's kubeconfig; on k3s it is "
                "/etc/rancher/k3s/k3s.yaml on the server node") from None
        self.server = str(self._api.configuration.host)
        self._timeout = request_timeout_s

    def close(self) -> None:
        self._api.close()

    def request(self, method: str, path: str, *, body: Any = None,
                query: list[tuple[str, str]] | None = None,
                content_type: str | None = None) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        _, url, headers, serialized, _ = self._api.param_serialize(
            method, path, query_params=query or [], header_params=headers, body=body,
            auth_settings=["BearerToken"])
        try:
            response = self._api.call_api(method, url, header_params=headers, body=serialized,
                                          _request_timeout=self._timeout)
            data = response.read()
        except urllib3.exceptions.HTTPError as exc:
            raise errors.EndpointUnreachable(
                f"the Kubernetes API at {self.server} is unreachable: "
                f"{type(exc).__name__}",
                "is the cluster up, and is this its kubeconfig? (`kubectl cluster-info`)"
            ) from None
        except ApiException as exc:                    # TLS failures come this way
            raise errors.EndpointUnreachable(
                f"the Kubernetes API at {self.server} refused the connection: "
                f"{exc.reason}", "check the kubeconfig's server and certificate") from None
        status = response.status
        document = json.loads(data) if data else {}
        if 200 <= status < 300:
            return dict(document)
        reason = document.get("message") if isinstance(document, dict) else None
        reason = reason or f"HTTP {status}"
        if status == 404:
            raise NotFound(reason)
        if status in (401, 403):
            raise errors.PermissionDenied(
                f"the Kubernetes API refused {method} {path}: {reason}",
                "the kubeconfig's user needs to manage this namespace (an admin binding in "
                "it, or cluster-admin for the namespace itself)")
        raise errors.CloudError(f"Kubernetes API {method} {path}: {reason}")

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply as fraudctl; conflicts with other managers are taken over (the
        stack's objects are fraudctl's)."""
        metadata = body["metadata"]
        path = path_of(body["kind"], metadata.get("namespace"), metadata["name"],
                       body["apiVersion"])
        return self.request("PATCH", path, body=body, content_type=APPLY_PATCH,
                            query=[("fieldManager", FIELD_MANAGER), ("force", "true")])

    def get(self, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        try:
            return self.request("GET", path_of(kind, namespace, name))
        except NotFound:
            return None

    def list(self, kind: str, namespace: str | None, selector: str) -> list[dict[str, Any]]:
        found = self.request("GET", path_of(kind, namespace),
                             query=[("labelSelector", selector)])
        return list(found.get("items", []))

    def delete(self, kind: str, name: str, namespace: str | None) -> bool:
        """True if it was there; the deletion cascades to what it owns (foreground)."""
        try:
            self.request("DELETE", path_of(kind, namespace, name),
                         body={"propagationPolicy": "Foreground"})
        except NotFound:
            return False
        return True

    def has_kind(self, api_version: str, plural: str) -> bool:
        """Whether the cluster serves this resource (a CRD such as PrometheusRule's)."""
        try:
            found = self.request("GET", f"/apis/{api_version}")
        except NotFound:
            return False
        return any(r.get("name") == plural for r in found.get("resources", []))

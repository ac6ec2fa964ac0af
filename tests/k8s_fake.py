"""A fake Kubernetes API server on 127.0.0.1 that records every request.

No cluster runs in CI. This server speaks the REST API the way fraudctl uses it: server-side
apply (PATCH application/apply-patch+yaml), merge patch, GET of an object or of a collection
with a label selector, DELETE, and the discovery of a group's resources. It keeps the objects
in memory and gives Deployments a status, as a controller would:

- a Deployment whose pods can run is at once fully rolled out (its pods exist, listed by
  selector); with ``replicas: 0`` its pods are gone;
- an image in ``broken_images`` never becomes available, and its pods wait in
  ImagePullBackOff with the kubelet's message;
- a namespace in ``forbidden`` answers 403 to every write, as RBAC would;
- ``crds`` lists the custom resource groups the cluster serves (monitoring.coreos.com/v1 for
  PrometheusRule, keda.sh/v1alpha1 for ScaledObject).

``requests`` holds (method, path, query) for every call, for tests that assert sequences.
"""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

PLURAL_KINDS = {"namespaces": "Namespace", "serviceaccounts": "ServiceAccount",
                "secrets": "Secret", "configmaps": "ConfigMap", "services": "Service",
                "pods": "Pod", "deployments": "Deployment", "cronjobs": "CronJob",
                "jobs": "Job", "scaledobjects": "ScaledObject",
                "prometheusrules": "PrometheusRule", "events": "Event"}
CRD_RESOURCES = {"monitoring.coreos.com/v1": "prometheusrules",
                 "keda.sh/v1alpha1": "scaledobjects"}


def _merge(into: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    for key, value in change.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)
    return into


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class FakeKubernetes:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, str]] = []
        self.broken_images: set[str] = set()
        self.forbidden: set[str] = set()
        self.crds: set[str] = set()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                with fake.lock:
                    fake.requests.append((self.command, parts.path, parts.query))
                    status, body = fake.handle(self.command, parts.path,
                                               parse_qs(parts.query),
                                               self.headers.get("Content-Type", ""), raw)
                self._answer(status, body)

            do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeKubernetes:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, directory: Path) -> Path:
        path = directory / "kubeconfig"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {
                "server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "tester", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester"}}],
        }))
        return path

    # -- what tests look at ----------------------------------------------------------------

    def calls(self, *, writes_only: bool = False) -> list[str]:
        """Recorded requests as 'METHOD path', optionally only the writes."""
        return [f"{method} {path}" for method, path, _ in self.requests
                if not writes_only or method != "GET"]

    def get(self, path: str) -> dict[str, Any] | None:
        return self.objects.get(path)

    # -- the API ---------------------------------------------------------------------------

    @staticmethod
    def _status(code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
        return code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                      "reason": reason, "message": message, "code": code}

    def _namespace_of(self, path: str) -> str | None:
        parts = path.strip("/").split("/")
        if "namespaces" in parts:
            index = parts.index("namespaces")
            if index + 1 < len(parts):
                return parts[index + 1]
        return None

    def handle(self, method: str, path: str, query: dict[str, list[str]], content_type: str,
               raw: bytes) -> tuple[int, dict[str, Any]]:
        if path.startswith("/apis/") and path.count("/") == 3:        # discovery of a group
            return self._discovery(path)
        refused = self._refused(method, path)
        if refused:
            return refused
        if method == "GET":
            return self._get(path, query)
        if method == "PATCH":
            return self._patch(path, content_type, json.loads(raw or b"{}"))
        if method == "DELETE":
            return self._delete(path)
        return self._status(405, "MethodNotAllowed", method)

    def _get(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        plural = path.rstrip("/").split("/")[-1]
        if plural in PLURAL_KINDS:                                     # a collection
            return 200, {"kind": "List", "items": self._list(path, plural, query)}
        found = self.objects.get(path)
        if found is None:
            return self._status(404, "NotFound", f"{path} not found")
        return 200, self._with_status(found)

    def _discovery(self, path: str) -> tuple[int, dict[str, Any]]:
        group = path[len("/apis/"):]
        if group not in self.crds:
            return self._status(404, "NotFound", f"the server could not find {path}")
        return 200, {"kind": "APIResourceList", "groupVersion": group,
                     "resources": [{"name": CRD_RESOURCES[group], "namespaced": True}]}

    def _refused(self, method: str, path: str) -> tuple[int, dict[str, Any]] | None:
        """RBAC: no write in (or to) a forbidden namespace."""
        if method == "GET":
            return None
        namespace = self._namespace_of(path)
        if namespace in self.forbidden:
            return self._status(403, "Forbidden",
                                f'{method.lower()} is forbidden: User "tester" cannot modify '
                                f'resources in the namespace "{namespace}"')
        return None

    def _patch(self, path: str, content_type: str,
               change: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        existing = self.objects.get(path)
        if "apply-patch" in content_type:
            body = copy.deepcopy(change)
            generation = (existing or {}).get("metadata", {}).get("generation", 0)
            changed = existing is None or self._spec(existing) != self._spec(body)
            body["metadata"]["generation"] = generation + (1 if changed else 0)
        elif existing is None:
            return self._status(404, "NotFound", f"{path} not found")
        else:
            body = _merge(copy.deepcopy(existing), change)
            body["metadata"]["generation"] = existing["metadata"]["generation"] + 1
        self.objects[path] = body
        return 200, self._with_status(body)

    def _delete(self, path: str) -> tuple[int, dict[str, Any]]:
        if path not in self.objects:
            return self._status(404, "NotFound", f"{path} not found")
        del self.objects[path]
        if path.startswith("/api/v1/namespaces/") and path.count("/") == 4:
            namespace = path.rsplit("/", 1)[1]                # what it held goes with it
            for key in [k for k in self.objects if f"/namespaces/{namespace}/" in k]:
                del self.objects[key]
        return 200, {"kind": "Status", "status": "Success"}

    @staticmethod
    def _spec(body: dict[str, Any]) -> Any:
        return {k: v for k, v in body.items() if k != "metadata"}

    def _list(self, path: str, plural: str, query: dict[str, list[str]]) -> list[Any]:
        selector = (query.get("labelSelector") or [""])[0]
        if plural == "pods":
            items = self._pods(self._namespace_of(path))
        else:
            items = [self._with_status(o) for key, o in self.objects.items()
                     if key.rsplit("/", 1)[0] == path.rstrip("/")]
        return [i for i in items if _matches(i["metadata"].get("labels", {}), selector)]

    def _deployment_image(self, deployment: dict[str, Any]) -> str:
        return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])

    def _with_status(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("kind") == "Job":
            return self._job_status(body)
        if body.get("kind") != "Deployment":
            return body
        shown = copy.deepcopy(body)
        replicas = int(body["spec"].get("replicas", 1))
        healthy = self._deployment_image(body) not in self.broken_images
        shown["status"] = {
            "observedGeneration": body["metadata"]["generation"], "replicas": replicas,
            "updatedReplicas": replicas, "readyReplicas": replicas if healthy else 0,
            "availableReplicas": replicas if healthy else 0}
        return shown

    def _job_status(self, body: dict[str, Any]) -> dict[str, Any]:
        """A Job ends at once: complete, or failed when its image cannot be pulled."""
        shown = copy.deepcopy(body)
        if self._deployment_image(body) in self.broken_images:
            shown["status"] = {"failed": 1, "conditions": [{
                "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit"}]}
        else:
            shown["status"] = {"succeeded": 1, "conditions": [
                {"type": "Complete", "status": "True"}]}
        return shown

    def _pods(self, namespace: str | None) -> list[dict[str, Any]]:
        pods = []
        for key, body in self.objects.items():
            if body.get("kind") not in ("Deployment", "Job") or \
                    self._namespace_of(key) != namespace:
                continue
            image = self._deployment_image(body)
            labels = dict(body["spec"]["template"]["metadata"]["labels"])
            if body["kind"] == "Job":
                labels["job-name"] = body["metadata"]["name"]
            for i in range(int(body["spec"].get("replicas", 1))):
                waiting = ({"reason": "ImagePullBackOff",
                            "message": f'Back-off pulling image "{image}"'}
                           if image in self.broken_images else None)
                state = {"waiting": waiting} if waiting else {"running": {}}
                pods.append({"metadata": {
                    "name": f"{body['metadata']['name']}-{i}", "namespace": namespace,
                    "labels": labels},
                    "status": {"containerStatuses": [{"name": "main", "state": state}]}})
        return pods

"""A small HTTP endpoint for processes that are not web services (the consumer, the exporter):
/health (alive), /ready (able to do its job), /metrics (Prometheus)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from fraudctl.runtime import Runtime


class DatabaseReadiness:
    """Readiness as "the database answers", asked at most every ``cache_s`` seconds, so
    probes every few seconds from several callers cost one query."""

    def __init__(self, runtime: Runtime, cache_s: float = 2.0) -> None:
        self._runtime = runtime
        self._cache_s = cache_s
        self._checked_at = float("-inf")
        self._ok = False

    def __call__(self) -> bool:
        if time.monotonic() - self._checked_at > self._cache_s:
            try:
                # A probe must answer inside its own timeout (a second or two in Kubernetes):
                # not the pool's 30 s wait for a connection while the database is away.
                with self._runtime.pooled(wait_s=self._cache_s) as conn:
                    conn.execute("SELECT 1")
                self._ok = True
            except Exception:
                self._ok = False
            self._checked_at = time.monotonic()
        return self._ok

    def expire(self) -> None:
        """Forget the cached answer (the next call asks the database)."""
        self._checked_at = float("-inf")


def serve(host: str, port: int, ready: Callable[[], bool],
          registry: CollectorRegistry) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                self._reply(200, b"ok\n", "text/plain")
            elif self.path == "/ready":
                ok = ready()
                self._reply(200 if ok else 503, b"ready\n" if ok else b"not ready\n",
                            "text/plain")
            elif self.path == "/metrics":
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            else:
                self._reply(404, b"not found\n", "text/plain")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass                                 # probes every few seconds are not news

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server

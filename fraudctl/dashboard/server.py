"""The dashboard's web app (FastAPI): a page that polls two JSON endpoints, and the review page.

- ``GET /`` the page; ``/static/…`` its script, its style and Chart.js (vendored in the
  package: the page never reaches beyond the dashboard, which works with no network);
- ``GET /review`` the review queue's page, over ``/api/reviews`` (reviews.py); who may use
  it and change anything is access.py's;
- ``GET /api/panels`` every panel in one snapshot; a ``Server-Timing`` header gives the
  database time of each panel. With the database down it answers 503 with the reason;
- ``GET /api/model`` the active model's metrics and drift (slower to change, polled less);
- ``GET /health``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, StrictUndefined
from starlette.middleware.trustedhost import TrustedHostMiddleware

from fraudctl import faults
from fraudctl.dashboard import panels, reviews
from fraudctl.dashboard.access import Access, RequireLogin
from fraudctl.dashboard.model_status import ModelStatus
from fraudctl.runtime import Runtime

_JS, _CSS = "text/javascript; charset=utf-8", "text/css; charset=utf-8"
# name -> (path under templates/dashboard, type, cacheable for a day)
_ASSETS = {
    "dashboard.js": ("dashboard.js", _JS, False),
    "dashboard.css": ("dashboard.css", _CSS, False),
    "review.js": ("review.js", _JS, False),
    "chart.umd.min.js": ("vendor/chart.umd.min.js", _JS, True),
}


@dataclass(frozen=True)
class DashboardConfig:
    stack: str
    target: str
    refresh_s: float = 5.0
    # None: high-risk is what the scoring models decided; a number asks "what if" instead
    threshold: float | None = None
    # the big number turns amber, then red, at these many high-risk transactions in 15 min
    warn_at: int = 5
    critical_at: int = 20


def _template(path: str) -> str:
    return (resources.files("fraudctl") / "templates" / "dashboard" / path).read_text()


def _database_down(exc: Exception) -> JSONResponse:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return JSONResponse({"error": f"database unreachable: {reason}",
                         "hint": "is the stack up? `fraudctl status` shows its parts"},
                        status_code=503)


def _champion(deployment: dict[str, Any]) -> str | None:
    """The version the deployment panel names as champion (or the one consumers report)."""
    columns = deployment["columns"]
    for row in deployment["rows"]:
        record = dict(zip(columns, row, strict=True))
        if record["role"] in ("champion", "reported"):
            return str(record["version"])
    return None


def create_app(runtime: Runtime, config: DashboardConfig, *,
               allowed_hosts: tuple[str, ...] = ("*",), access: Access | None = None,
               policy: Callable[[], dict[str, Any]] | None = None) -> FastAPI:
    """``policy`` reads the serving deployment's decision policy (review and block
    thresholds, rules) when the page asks, so it says what high-risk means now."""
    access = access or Access()
    app = FastAPI(title="fraudctl dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    if access.login is not None:
        app.add_middleware(RequireLogin, login=access.login)
    queries = panels.render_all(config.threshold)
    models = ModelStatus(runtime)
    templates = Environment(undefined=StrictUndefined, autoescape=True)
    page = templates.from_string(_template("index.html")).render(config=config)
    review_page = templates.from_string(_template("review.html")).render(
        config=config, token=access.token, analyst=access.analyst())
    assets = {name: (_template(path), kind, cached) for name, (path, kind, cached)
              in _ASSETS.items()}
    last_champion: dict[str, str | None] = {"version": None}

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    @app.get("/review", response_class=HTMLResponse)
    def review() -> HTMLResponse:
        # (no framing: the page's buttons label transactions, so no other site may overlay it)
        return HTMLResponse(review_page, headers={"Cache-Control": "no-store",
                                                  "X-Frame-Options": "DENY",
                                                  "Content-Security-Policy":
                                                      "default-src 'self'; img-src 'self' data:; "
                                                      "frame-ancestors 'none'"})

    reviews.add_routes(app, runtime, access, _database_down)

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in assets:
            raise HTTPException(status_code=404)
        body, kind, cached = assets[name]
        return Response(body, media_type=kind, headers={
            "Cache-Control": "public, max-age=86400" if cached else "no-cache"})

    @app.get("/api/panels")
    def api_panels() -> JSONResponse:
        started = time.perf_counter()
        try:
            with runtime.pooled() as conn:
                data, timings = panels.snapshot(conn, queries)
        except Exception as exc:
            if not faults.is_transient(exc):        # a broken query is a bug: a 500, logged
                raise
            return _database_down(exc)
        last_champion["version"] = _champion(data["deployment"])
        total = (time.perf_counter() - started) * 1000
        header = ", ".join([f"{key};dur={ms:.1f}" for key, ms in timings.items()]
                           + [f"total;dur={total:.1f}"])
        return JSONResponse({"panels": data, "generated_ms": round(total, 1)},
                            headers={"Server-Timing": header, "Cache-Control": "no-store"})

    @app.get("/api/model")
    def api_model() -> JSONResponse:
        described = models.describe(last_champion["version"])
        if policy is not None:
            described["policy"] = policy()
        return JSONResponse(described, headers={"Cache-Control": "no-store"})

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app

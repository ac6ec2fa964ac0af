"""The scoring API (FastAPI): the original system's synchronous REST path.

POST /predict scores one transaction with the same feature function, card state and scorer as
the consumer. It reads the card's state without changing it: the consumer alone writes state,
so a prediction never counts a transaction the pipeline has not committed.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import psycopg
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fraudctl.pipeline import features as feature_fn
from fraudctl.pipeline import schema, sinks
from fraudctl.pipeline.health import DatabaseReadiness
from fraudctl.pipeline.merchant_risk import MerchantRiskCache
from fraudctl.pipeline.metrics import ApiMetrics
from fraudctl.pipeline.scoring import Deployment
from fraudctl.runtime import Runtime


def create_app(runtime: Runtime, deployment: Deployment) -> FastAPI:
    app = FastAPI(title="fraudctl scoring API", version=feature_fn.FEATURE_VERSION)
    metrics = ApiMetrics()
    metrics.model.info({"version": deployment.label})

    def load_daily(since_day: int) -> pd.DataFrame:
        with runtime.pooled() as conn:
            return sinks.load_merchant_daily(conn, since_day)

    merchants = MerchantRiskCache(load_daily)
    readiness = DatabaseReadiness(runtime)

    own: dict[str, psycopg.Connection[Any]] = {}

    def card_state(card: str) -> tuple[tuple[float, ...] | None, str | None]:
        """Read through one connection of the API's own: requests are served one at a time on
        the event loop, and a pool's checkout and liveness check would double the cost. A
        connection lost to a database restart is replaced once, then the error stands."""
        for attempt in (1, 2):
            conn = own.get("conn")
            if conn is None or conn.closed or conn.broken:
                conn = own["conn"] = runtime.connect(autocommit=True)
            try:
                return sinks.read_one_card_state(conn, card)
            except psycopg.OperationalError:
                conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def score_one(txn: schema.Transaction) -> dict[str, Any]:
        # The one-row feature path: plain floats, no frames (tests hold it equal to the
        # batch function the consumer uses).
        ts = txn.ts.timestamp()
        prior, home = card_state(txn.card_hash)
        row = feature_fn.compute_one(ts, txn.amount, txn.channel, txn.country,
                                     txn.merchant_id, prior, home,
                                     merchants.daily(int(ts // feature_fn.DAY_S)))
        features = pd.DataFrame(row, columns=feature_fn.FEATURE_NAMES)
        scored = deployment.score([txn.txn_id], features)
        return {"txn_id": txn.txn_id, "score": float(scored.scores[0]),
                "model": scored.models[0], "feature_version": feature_fn.FEATURE_VERSION,
                **{name: values[0].item() if hasattr(values[0], "item") else values[0]
                   for name, values in scored.extras.items()},
                "features": dict(zip(feature_fn.FEATURE_NAMES, row[0].round(4).tolist(),
                                     strict=True))}

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        started = time.perf_counter()
        body = await request.body()
        try:
            txn = schema.parse(body)
        except schema.Invalid as exc:
            metrics.requests.labels(outcome="invalid").inc()
            return JSONResponse({"error": str(exc)}, status_code=422)
        answer = score_one(txn)
        metrics.requests.labels(outcome="scored").inc()
        metrics.latency.observe(time.perf_counter() - started)
        return JSONResponse(answer)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    def ready() -> JSONResponse:
        ok = readiness()
        return JSONResponse({"ready": ok, "model": deployment.label},
                            status_code=200 if ok else 503)

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app

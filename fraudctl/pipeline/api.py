"""The scoring API (FastAPI): the original system's synchronous REST path.

POST /predict scores one transaction with the same feature function, card state and scorer as
the consumer. It reads the card's state without changing it: the consumer alone writes state,
so a prediction never counts a transaction the pipeline has not committed.

The event loop never waits on the database: scoring runs in worker threads, each with a
connection of a small set of the API's own, under a statement timeout, so a stalled database
slows /predict (and answers 503 with a reason) while /health and /metrics stay instant. A body is
read as it streams in and refused as soon as it passes the message limit.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import msgspec
import pandas as pd
import psycopg
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.middleware.trustedhost import TrustedHostMiddleware

from fraudctl import faults
from fraudctl.pipeline import features as feature_fn
from fraudctl.pipeline import schema, sinks
from fraudctl.pipeline.health import DatabaseReadiness
from fraudctl.pipeline.merchant_risk import MerchantRiskCache
from fraudctl.pipeline.metrics import ApiMetrics
from fraudctl.pipeline.scoring import Deployment, Explain
from fraudctl.runtime import Runtime

# Scoring threads (and database connections) per API process: a few are enough to keep the
# cores busy (the database read is ~1 ms), and bound what a stalled database can hold.
SCORING_THREADS = 4
STATEMENT_TIMEOUT_MS = 2000
CONNECT_TIMEOUT_S = 2.0


class _Connections:
    """A fixed set of the API's own connections, lent one per scoring thread: no pool
    checkout or liveness query per request, and a lost connection is replaced on next use."""

    def __init__(self, runtime: Runtime, size: int) -> None:
        self._runtime = runtime
        self._idle: queue.SimpleQueue[psycopg.Connection[Any] | None] = queue.SimpleQueue()
        for _ in range(size):
            self._idle.put(None)

    @contextmanager
    def lend(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self._idle.get()
        try:
            if conn is None or conn.closed or conn.broken:
                conn = self._runtime.connect(autocommit=True, timeout_s=CONNECT_TIMEOUT_S)
                conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
            yield conn
        except BaseException:
            if conn is not None:
                conn.close()
            conn = None
            raise
        finally:
            self._idle.put(conn)

    def close(self) -> None:
        while not self._idle.empty():
            conn = self._idle.get()
            if conn is not None:
                conn.close()


def _rule_fields(deployment: Deployment, txn: schema.Transaction) -> pd.DataFrame | None:
    """The message's fields for the rules (a frame costs ~0.2 ms: built only when rules act)."""
    if deployment.policy.rules is None:
        return None
    return pd.DataFrame([msgspec.structs.asdict(txn)])


def create_app(runtime: Runtime, deployment: Deployment, *,
               allowed_hosts: tuple[str, ...] = ("*",)) -> FastAPI:
    # No /docs, /redoc or /openapi.json: the API is a scoring endpoint, not a playground.
    app = FastAPI(title="fraudctl scoring API", version=feature_fn.FEATURE_VERSION,
                  docs_url=None, redoc_url=None, openapi_url=None)
    # On loopback, only loopback names: a web page cannot reach it by DNS rebinding.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    metrics = ApiMetrics()
    metrics.model.info({"version": deployment.label})

    def load_daily(since_day: int) -> pd.DataFrame:
        with runtime.pooled() as conn:
            return sinks.load_merchant_daily(conn, since_day)

    merchants = MerchantRiskCache(load_daily)
    readiness = DatabaseReadiness(runtime)
    connections = _Connections(runtime, SCORING_THREADS)
    scoring_slots = anyio.CapacityLimiter(SCORING_THREADS)

    def card_state(card: str) -> tuple[tuple[float, ...] | None, str | None]:
        """A connection lost to a database restart is replaced once, then the error stands. A
        statement timeout is not retried: the database is stalled, and a second wait would
        only double the time to the 503."""
        for attempt in (1, 2):
            try:
                with connections.lend() as conn:
                    return sinks.read_one_card_state(conn, card)
            except psycopg.errors.QueryCanceled:
                raise
            except psycopg.OperationalError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def score_one(txn: schema.Transaction, explain: Explain) -> dict[str, Any]:
        # The one-row feature path: plain floats, no frames (tests hold it equal to the
        # batch function the consumer uses).
        ts = txn.ts.timestamp()
        prior, home = card_state(txn.card_hash)
        row = feature_fn.compute_one(ts, txn.amount, txn.channel, txn.country,
                                     txn.merchant_id, prior, home,
                                     merchants.daily(int(ts // feature_fn.DAY_S)))
        features = pd.DataFrame(row, columns=feature_fn.FEATURE_COLUMNS)
        scored = deployment.score([txn.txn_id], features, explain=explain,
                                  fields=_rule_fields(deployment, txn))
        return {"txn_id": txn.txn_id, "score": float(scored.scores[0]),
                "decision": scored.decisions[0], "high_risk": bool(scored.high_risk[0]),
                "rules": scored.decided.rule_hits[0] or [],
                "model": scored.models[0], "feature_version": feature_fn.FEATURE_VERSION,
                **{name: values[0].item() if hasattr(values[0], "item") else values[0]
                   for name, values in scored.extras.items()},
                **({} if explain == "none" else {"reasons": scored.reasons_json()[0] or []}),
                "features": dict(zip(feature_fn.FEATURE_NAMES,
                                     row[0].round(feature_fn.STORED_DECIMALS).tolist(),
                                     strict=True))}

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        started = time.perf_counter()
        body = await _read_capped(request, schema.MAX_MESSAGE_BYTES)
        if body is None:
            metrics.requests.labels(outcome="invalid").inc()
            return JSONResponse({"error": f"body larger than {schema.MAX_MESSAGE_BYTES} bytes"},
                                status_code=413)
        try:
            txn = schema.parse(body)
        except schema.Invalid as exc:
            metrics.requests.labels(outcome="invalid").inc()
            return JSONResponse({"error": str(exc)}, status_code=422)
        try:
            # ?reasons=false: the score alone, without the ~1 ms its reasons take.
            explain: Explain = ("none" if request.query_params.get("reasons") in
                                ("false", "0") else "all")
            answer = await anyio.to_thread.run_sync(score_one, txn, explain,
                                                    limiter=scoring_slots)
        except Exception as exc:
            if not faults.is_transient(exc):
                raise
            metrics.requests.labels(outcome="unavailable").inc()
            return JSONResponse(
                {"error": f"the stack's database is unavailable: {faults.first_line(exc)}",
                 "retry": True}, status_code=503, headers={"Retry-After": "1"})
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

    app.router.on_shutdown.append(connections.close)
    return app


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed ``limit``: from Content-Length
    before reading anything, else while it streams (chunked bodies), never the whole of it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)

"""The review page's JSON: the open queue, one alert with its card's history, and verdicts.
Thin over fraudctl.pipeline.review, as the `fraudctl review` commands are.

- ``GET /api/reviews?limit=&offset=`` the backlog and the oldest open alerts;
- ``GET /api/reviews/{txn_id}`` one alert, its reasons and rule hits, the card's latest
  transactions;
- ``POST /api/reviews/{txn_id}`` ``{"verdict": "fraud"|"genuine", "note": "..."}`` with the
  page's token (see access.py): the verdict becomes the transaction's label;
- ``GET /api/thresholds`` the trade-off curve the active champion's thresholds were chosen
  on (`fraudctl model thresholds --apply` keeps it), for the page's plot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from fraudctl import errors, faults, output
from fraudctl.dashboard.access import TOKEN_HEADER, Access
from fraudctl.pipeline import review
from fraudctl.runtime import Runtime

MAX_BODY = 8192
PAGE = 200


def _json(document: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(document, status_code=status, headers={"Cache-Control": "no-store"})


def _refused(exc: errors.FraudctlError, status: int) -> JSONResponse:
    return _json({"error": exc.message, "hint": exc.hint}, status)


def add_routes(app: FastAPI, runtime: Runtime, access: Access,
               database_down: Callable[[Exception], JSONResponse]) -> None:
    def guarded(work: Callable[[], JSONResponse]) -> JSONResponse:
        try:
            return work()
        except review.NotFound as exc:
            return _refused(exc, 404)
        except review.Conflict as exc:
            return _refused(exc, 409)
        except errors.ConfigError as exc:
            return _refused(exc, 400)
        except Exception as exc:
            if not faults.is_transient(exc):
                raise
            return database_down(exc)

    @app.get("/api/reviews")
    def open_reviews(limit: int = PAGE, offset: int = 0) -> JSONResponse:
        def work() -> JSONResponse:
            with runtime.pooled() as conn:
                alerts = review.list_open(conn, limit=limit, offset=offset)
                backlog = review.backlog(conn)
            return _json({"backlog": backlog.as_dict(),
                          "alerts": [alert.as_dict() for alert in alerts]})
        return guarded(work)          # (list_open refuses a bad limit or offset: a 400)

    @app.get("/api/reviews/{txn_id}")
    def one_review(txn_id: str) -> JSONResponse:
        def work() -> JSONResponse:
            with runtime.pooled() as conn:
                alert = review.get(conn, txn_id)
                history = review.card_history(conn, alert.card_hash, before=alert.ts)
            return _json({**alert.as_dict(), "card_history": [
                {name: output.plain(value) for name, value in row.items()}
                for row in history]})
        return guarded(work)

    @app.get("/api/thresholds")
    def applied_thresholds() -> JSONResponse:
        from fraudctl.model import thresholds

        def work() -> JSONResponse:
            with runtime.pooled() as conn:
                row = conn.execute(
                    "SELECT version FROM model_deployments WHERE ended_at IS NULL "
                    "AND role = 'champion' ORDER BY started_at DESC LIMIT 1").fetchone()
            version = str(row[0]) if row else None
            found = thresholds.load_applied(runtime.store, version) if version else None
            return _json({"version": version, "applied": found})
        return guarded(work)

    @app.post("/api/reviews/{txn_id}")
    async def resolve(txn_id: str, request: Request) -> JSONResponse:
        if not access.token_ok(request.headers.get(TOKEN_HEADER)):
            return _json({"error": "missing or wrong page token",
                          "hint": "resolve from the review page (reload it)"}, 403)
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            return _json({"error": "the body must be application/json"}, 415)
        body = await request.body()
        if len(body) > MAX_BODY:
            return _json({"error": f"the body is larger than {MAX_BODY} bytes"}, 413)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _json({"error": "the body is not JSON"}, 400)
        verdict = document.get("verdict") if isinstance(document, dict) else None
        note = document.get("note") if isinstance(document, dict) else None
        if verdict not in ("fraud", "genuine") or not (note is None or isinstance(note, str)):
            return _json({"error": 'give {"verdict": "fraud" or "genuine", "note": text}'},
                         400)

        def work() -> JSONResponse:
            with runtime.pooled() as conn:
                alert = review.resolve(conn, txn_id, is_fraud=verdict == "fraud",
                                       note=note or None, analyst=access.analyst())
            return _json(alert.as_dict())
        # (in a worker thread: the database round trips must not hold the event loop)
        return await run_in_threadpool(guarded, work)

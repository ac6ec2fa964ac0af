"""`fraudctl status`: every part of the stack with its live state, read from the parts."""

from __future__ import annotations

from typing import Any

from fraudctl import errors
from fraudctl.config import Settings
from fraudctl.lifecycle import load_state
from fraudctl.model import deployment
from fraudctl.model.windows import test_days_of
from fraudctl.pipeline.scoring import RULES_VERSION, RuleScorer
from fraudctl.ports import Stack
from fraudctl.probes import StatusRow


def collect(stack: Stack) -> list[StatusRow]:
    stack.require()
    return [*stack.status_rows(), dashboard_row(stack.settings), models_row(stack)]


def dashboard_row(settings: Settings) -> StatusRow:
    """Where `fraudctl dashboard` serves this stack now. It is optional: not serving is not
    unhealthy, and the row says how to start it."""
    from fraudctl.dashboard import presence

    urls = presence.serving(settings)
    detail = (", ".join(urls) if urls
              else "not running · `fraudctl dashboard --open` serves it on this machine")
    return StatusRow("dashboard", "web page", "ok", detail, {"urls": urls})


def models_row(stack: Stack) -> StatusRow:
    """What scores: the active colour, its spec, and what a rollback would return to."""
    serving = deployment.serving(load_state(stack.settings))
    spec = serving.spec
    detail = f"{serving.active} · {spec.label}"
    # High-risk is what the deployment decides: review from its review threshold (the
    # champion's own unless one was chosen), block from its block threshold, and the rules.
    threshold = (spec.review_at if spec.review_at is not None
                 else champion_threshold(stack, spec.champion))
    if threshold is not None:
        detail += f" · high-risk at score ≥ {threshold:.4g}"
    if spec.block_at is not None:
        detail += f" · block at ≥ {spec.block_at:.4g}"
    if spec.rules is not None:
        detail += f" · rules {spec.rules[:12]}"
    if serving.spec.champion == RULES_VERSION:
        detail += " (rule-based: train one with `fraudctl retrain`)"
    if serving.history:
        detail += f" · rollback to {serving.history[-1].label}"
    return StatusRow("models", "serving", "ok", detail,
                     {"champion": spec.champion, "threshold": threshold,
                      "block_at": spec.block_at, "rules": spec.rules})


def champion_threshold(stack: Stack, version: str) -> float | None:
    """The decision threshold the champion flags high-risk from (None: registry unreadable)."""
    if version == RULES_VERSION:
        return RuleScorer.threshold
    manifest = _manifest(stack, version)
    try:
        return float(manifest["threshold"]) if manifest else None
    except (KeyError, TypeError, ValueError):
        return None


def _manifest(stack: Stack, version: str) -> dict[str, Any] | None:
    """A registered version's manifest, or None when the registry cannot be read."""
    from fraudctl.model.registry import Registry

    try:
        return dict(Registry(stack.object_store()).info(version).manifest)
    except errors.FraudctlError:
        return None


def summary(settings: Settings, rows: list[StatusRow]) -> dict[str, Any]:
    state = load_state(settings)
    serving = deployment.serving(state)
    return {
        "stack": settings.stack,
        "target": settings.target,
        "healthy": all(row.health == "ok" for row in rows),
        "resources": [row.as_dict() for row in rows],
        "active_model": serving.spec.champion,
        "active_colour": serving.active,
        "serving": serving.spec.label,
        "previous": serving.history[-1].label if serving.history else None,
    }


def serving_summary(stack: Stack) -> dict[str, Any]:
    """What `up` ends with: the champion and its held-out metrics, its threshold, where the
    API answers, and the commands to go on with."""
    champion = deployment.serving(load_state(stack.settings)).spec.champion
    manifest = None if champion == RULES_VERSION else _manifest(stack, champion)
    summary: dict[str, Any] = {
        "champion": champion, "rule_based": champion == RULES_VERSION,
        "threshold": champion_threshold(stack, champion),
        "metrics": manifest.get("metrics") if manifest else None,
        "test_window": test_days_of(manifest.get("window")) if manifest else None,
        "api": stack.api_url()}
    summary["next"] = [
        ("fraudctl produce --rate 100 --duration 30s", "send live simulated traffic"),
        ("fraudctl dashboard --open", "watch it on the live dashboard"),
        ("fraudctl query athena --list", "ask the lake (named queries)"),
        ("fraudctl status", "every part's health"),
    ]
    return summary

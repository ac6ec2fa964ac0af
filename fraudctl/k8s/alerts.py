"""The stack's Prometheus alerts: FraudConsumerDown, and FraudReviewBacklogStale.

It fires when no consumer replica is available (kube-state-metrics), or when consumers run but
none has committed a batch for five minutes while the queue holds messages (the consumers'
own metrics: their heartbeat keeps the queue gauge fresh even when batches stall). The same
rule group becomes a PrometheusRule where the operator's CRD exists, and a plain rules file
(in a ConfigMap) otherwise; `promtool check rules` and `promtool test rules` run on it in the
tests.

FraudReviewBacklogStale (a warning) fires when the oldest open review has waited more than
four hours for fifteen minutes: alerts are reaching the queue faster than analysts resolve
them, or nobody is looking (the consumers' heartbeat reads the backlog every 5 s).
"""

from __future__ import annotations

from typing import Any

import yaml

ALERT = "FraudConsumerDown"
BACKLOG_ALERT = "FraudReviewBacklogStale"
STALL_S = 300
REVIEW_STALE_S = 4 * 3600
RUNBOOK = ("Runbook: `kubectl -n {ns} get deploy,pods -l app.kubernetes.io/component=consumer` "
           "and `kubectl -n {ns} logs -l app.kubernetes.io/component=consumer --tail=100`; "
           "`fraudctl status --target aws` shows queue depth and the database; a crash loop "
           "on start is usually the database secret or the model artifact "
           "(`fraudctl models show VERSION`).")


def rule_groups(stack: str, namespace: str) -> list[dict[str, Any]]:
    ns = f'namespace="{namespace}"'
    consumers = f'{ns}, deployment=~"consumer-(blue|green)"'
    expression = (
        f"(sum(kube_deployment_status_replicas_available{{{consumers}}}) or vector(0)) == 0\n"
        f"or\n"
        f"((time() - max(fraudctl_last_commit_timestamp_seconds{{{ns}}})) > {STALL_S}\n"
        f"  and on() max(fraudctl_queue_visible_messages{{{ns}, role=\"queue\"}}) > 0)"
    )
    return [{
        "name": f"fraudctl-{stack}",
        "rules": [{
            "alert": ALERT,
            "expr": expression,
            "for": "2m",
            "labels": {"severity": "critical", "stack": stack},
            "annotations": {
                "summary": f"fraudctl stack {stack}: no consumer is scoring transactions",
                "description": ("No consumer replica is available in namespace "
                                f"{namespace}, or none has committed a batch for "
                                f"{STALL_S // 60} minutes while the queue is not empty."),
                "runbook": RUNBOOK.format(ns=namespace),
            },
        }, {
            "alert": BACKLOG_ALERT,
            "expr": f"max(fraudctl_review_oldest_age_seconds{{{ns}}}) > {REVIEW_STALE_S}",
            "for": "15m",
            "labels": {"severity": "warning", "stack": stack},
            "annotations": {
                "summary": f"fraudctl stack {stack}: alerts wait more than "
                           f"{REVIEW_STALE_S // 3600} hours for review",
                "description": ("The oldest open review has waited more than "
                                f"{REVIEW_STALE_S // 3600} hours: fraudctl_review_backlog "
                                "says how many are open."),
                "runbook": ("`fraudctl review list --target aws` shows the queue oldest first; "
                            "more reviewers, or a higher review threshold (`fraudctl model "
                            "thresholds --capacity N --apply`), bring it down."),
            },
        }],
    }]


def rules_yaml(stack: str, namespace: str) -> str:
    """The plain Prometheus rules file (what `promtool check rules` reads)."""
    return yaml.safe_dump({"groups": rule_groups(stack, namespace)}, sort_keys=False, width=100)

"""The scheduler's Prometheus metrics: billing passes and what they did to subscriptions."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter

PASSES = Counter("cam2drive_billing_passes", "Billing passes by outcome (ok, error)", ["outcome"])
SUBSCRIPTIONS = Counter(
    "cam2drive_billing_subscriptions",
    "Subscriptions a billing pass changed or could not reach, by outcome",
    ["outcome"],
)
_OUTCOMES = ("activated", "past_due", "blocked", "deleted", "unreachable", "errors")


def observe_pass(report: dict[str, Any] | None) -> None:
    """Count one pass; `report` None: it failed before reporting."""
    if report is None:
        PASSES.labels("error").inc()
        return
    PASSES.labels("ok").inc()
    for outcome in _OUTCOMES:
        SUBSCRIPTIONS.labels(outcome).inc(len(report.get(outcome) or ()))

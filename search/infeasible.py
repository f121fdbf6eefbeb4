"""Configurations the trainer refused to train (too many parameters): how the search records them.

A trainer answers such a configuration with ``status="infeasible"``, a ``reason``,
``val_error = 1.0`` and no cost (trainers/entry.py). The scheduler and the searcher see that
result like any other, so a model-based searcher learns the region is bad and draws elsewhere;
what differs is the record: MLflow gets no evaluation for it (nothing was trained, so no budget
was spent and no rank correlation or incumbent should see a 1.0 that was never measured), only
a failed child run with ``failure_kind=infeasible``, the reason and the parameter count.
"""

from __future__ import annotations

from typing import Any, Mapping

#: The status string a trainer returns for a configuration it did not train. Other searchers
#: treat every status other than "ok" as a bad point, so it must stay exactly this.
INFEASIBLE = "infeasible"


def is_infeasible(metrics: Mapping[str, Any]) -> bool:
    return str(metrics.get("status", "ok")) == INFEASIBLE


def infeasible_reason(metrics: Mapping[str, Any]) -> str:
    return str(metrics.get("reason") or "infeasible: the trainer refused this configuration")


def trained(metrics: Mapping[str, Any]) -> bool:
    """Whether an infeasible result was measured after training: a constraint broken by a metric
    known only then (search/objectives.py). It spent budget, so it is recorded as an evaluation."""
    return bool(metrics.get("constraint_violations"))


def record_infeasible(tracker, trial_id: str, metrics: Mapping[str, Any], reasons: dict[str, str]) -> bool:
    """When ``metrics`` is an infeasible result: remember its reason in ``reasons`` (the run is
    closed as failed with it when the trial ends), tag the trial's run with its parameter count,
    and return True so the caller records no evaluation, unless it was :func:`trained` (then its
    evaluation is recorded, status infeasible). Otherwise return False."""
    if not is_infeasible(metrics):
        return False
    reasons[trial_id] = infeasible_reason(metrics)
    tags = {"infeasible": "true"}
    if metrics.get("n_params") is not None:
        tags["n_params"] = str(int(metrics["n_params"]))
    tracker.set_trial_tags(trial_id, tags)
    return not trained(metrics)

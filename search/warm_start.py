"""Warm start from an earlier search: ``--warm-start-from EXPERIMENT[:SEARCH_RUN]`` [``--warm-start-top K``].

The earlier search is read back like any other (results.py) and its evaluations go to the new
search's searcher through the same door a resumed search uses (``observations`` of
``ray_tune.run_tune``/``hpbandster_backend.run_hpbandster``, i.e. ``ray_tune.warm_start``:
BOHB's KDEs get every evaluation at its budget, TPE each configuration's error at the highest
budget it reached, random search skips configurations already tried). The count lands in the
search run's metric ``warm_start_observations``, as for a resume.

Which evaluations are compatible: those whose configuration is a valid configuration of the new
space, checked with ConfigSpace (same names, values inside the new ranges or choices, conditions
met, nothing missing). When both searches' spaces are the same every evaluation is; when they
differ (a range narrowed, a hyperparameter added or renamed) the others are left out, and the
log says how many. There is no mapping of renamed hyperparameters. Evaluations recorded in
another budget unit (epochs vs seconds) cannot be compared and make it a usage error, as does a
source with no compatible successful evaluation. Budgets are taken as they were: an evaluation at
a budget the new search does not use still informs the model at that budget.

``--warm-start-top K`` also evaluates the source's K best configurations (lowest ``val_error`` at
the highest budget each reached, compatible ones only) as the new search's first trials; they
count towards ``--num-samples``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from jointsearch.dashboards.records import EvaluationRecord
from jointsearch.spaces import SpaceError, config_dict, validate_config

from .errors import UsageError

log = logging.getLogger("jointsearch.search")


@dataclass(frozen=True)
class WarmStart:
    """What a new search takes from an earlier one."""

    source_run_id: str
    observations: list[EvaluationRecord]  # compatible evaluations, ok or not (random search skips all)
    first_configs: list[dict[str, Any]] = field(default_factory=list)  # the top-k, best first
    left_out: int = 0  # evaluations whose configuration does not fit the new space


def parse_source(text: str) -> tuple[str, str | None]:
    """``EXPERIMENT`` or ``EXPERIMENT:SEARCH_RUN`` (a run id has no colon; an experiment name may)."""
    experiment, sep, run_id = text.rpartition(":")
    if not sep:
        return text, None
    if not experiment or not run_id:
        raise UsageError(f"--warm-start-from must look like EXPERIMENT or EXPERIMENT:SEARCH_RUN, got {text!r}")
    return experiment, run_id


def fits(space, config: dict[str, Any]) -> dict[str, Any] | None:
    """``config`` as a configuration of ``space`` (typed), or None when it is not one."""
    try:
        return config_dict(validate_config(space, config))
    except (SpaceError, ValueError, TypeError, KeyError):
        return None


def top_configs(records: list[EvaluationRecord], k: int) -> list[dict[str, Any]]:
    """The ``k`` best distinct configurations: highest budget reached first, then lowest error."""
    from .tracking import config_id

    best: dict[str, EvaluationRecord] = {}
    for r in records:
        if r.status != "ok" or not math.isfinite(r.val_error):
            continue
        key = config_id(r.config)
        old = best.get(key)
        if old is None or (r.budget, -r.val_error) > (old.budget, -old.val_error):
            best[key] = r
    ranked = sorted(best.values(), key=lambda r: (-r.budget, r.val_error))
    return [dict(r.config) for r in ranked[:k]]


def load_warm_start(uri: str, source: str, space, budget_unit: str, top: int = 0) -> WarmStart:
    """Read the source search and keep what fits ``space``; ``UsageError`` when nothing does."""
    from .results import read_search

    experiment, run_id = parse_source(source)
    results = read_search(uri, experiment, run_id)
    if results.budget_unit and results.budget_unit != budget_unit:
        raise UsageError(f"--warm-start-from {source}: that search measured budgets in {results.budget_unit}, "
                         f"this one in {budget_unit}; their evaluations cannot be compared")
    kept: list[EvaluationRecord] = []
    for r in results.records:
        config = fits(space, dict(r.config))
        if config is not None:
            kept.append(EvaluationRecord(
                trial_id=f"warm-{r.trial_id}", config=config, budget=r.budget, val_error=r.val_error,
                status=r.status, cost_s=r.cost_s, finished_at=r.finished_at, bracket=r.bracket, n_params=r.n_params))
    left_out = len(results.records) - len(kept)
    if not any(r.status == "ok" and math.isfinite(r.val_error) for r in kept):
        raise UsageError(f"--warm-start-from {source}: none of the {len(results.records)} evaluations of search "
                         f"{results.search_run_id} fits this search's space (same names and ranges needed)")
    if left_out:
        log.warning("warm start from search %s: %d of %d evaluations do not fit this space and are left out",
                    results.search_run_id, left_out, len(results.records))
    return WarmStart(source_run_id=results.search_run_id, observations=kept,
                     first_configs=top_configs(kept, top) if top else [], left_out=left_out)


def evaluate_first(searcher, configs: list[dict[str, Any]]) -> int:
    """Make a fresh searcher propose ``configs`` before anything of its own; returns how many.

    Each searcher has its own queue: Optuna's study takes ``enqueue_trial`` (public API),
    TuneBOHB proposes its ``points_to_evaluate`` first, and our random searcher its ``first``.
    """
    configs = [dict(c) for c in configs]
    study = getattr(searcher, "_ot_study", None)
    if study is not None:
        for config in configs:
            study.enqueue_trial(config)
        return len(configs)
    if hasattr(searcher, "_points_to_evaluate"):
        searcher._points_to_evaluate = configs + list(searcher._points_to_evaluate or [])
        return len(configs)
    if hasattr(searcher, "first"):
        searcher.first = configs + list(searcher.first)
        return len(configs)
    log.warning("the %s searcher cannot be told which configurations to evaluate first; "
                "--warm-start-top is ignored", type(searcher).__name__)
    return 0

"""The Python API: what the CLI does, callable from a notebook or a user's script.

    from jointsearch.search import SearchSettings, run_search
    summary = run_search(SearchSettings(space="my_space.json", trainer="mypkg.train:fit",
                                        min_budget=1, max_budget=27))
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any

from jointsearch.dashboards.analysis import best_configuration
from jointsearch.dashboards.records import EvaluationRecord
from jointsearch.spaces import load_space, to_json

from .budgets import rung_budgets, step_scale
from .presets import get_preset
from .results import read_search
from .settings import SearchSettings
from .tracking import SearchTracker
from .trainer_api import BUILTIN_RETRAINER, call_trainer, resolve


@dataclass(frozen=True)
class SearchSummary:
    search_run_id: str
    experiment: str
    tracking_uri: str
    budgets: tuple[float, ...]
    n_trials: int
    n_evaluations: int
    evaluations_per_budget: dict[float, int]
    failed_trials: int
    best: EvaluationRecord | None
    wall_s: float


def run_search(settings: SearchSettings) -> SearchSummary:
    """Validate everything, then run the search and record it in MLflow; returns what it found.

    Nothing is written (no MLflow store, no Ray results) until the settings, the space and the
    trainer have all been checked, so a typo costs nothing.
    """
    started = time.time()
    settings.validate()
    space = load_space(settings.space)
    if not settings.builtin_trainer:
        resolve(settings.trainer)  # fail now, in the driver, not in every worker
    rungs = rung_budgets(settings.min_budget, settings.max_budget, settings.eta)

    if get_preset(settings.scheduler).backend == "hpbandster":
        from .hpbandster_backend import run_hpbandster as run_backend
    else:
        from .ray_tune import run_tune as run_backend  # Ray is heavy: imported only when a search runs

    tracker = SearchTracker(settings.tracking_uri, settings.experiment, step_scale(rungs))
    run_name = f"{space.name or 'space'}-{settings.scheduler}-{time.strftime('%Y%m%d-%H%M%S')}"
    settings_json = json.dumps(dataclasses.asdict(settings), indent=2, default=str)
    tracker.start_search(settings.as_params(), run_name=run_name, budget_unit=settings.budget_unit,
                         artifacts={"space.json": to_json(space), "settings.json": settings_json})
    tracker.attach_dashboards(space=space, settings=settings.as_params(), title=f"jointsearch: {run_name}",
                              refresh_every=settings.dashboard_every)
    try:
        run_backend(settings, space, tracker, run_name)
    except BaseException:
        tracker.end_search("KILLED")
        raise
    tracker.end_search("FINISHED")
    results = read_search(settings.tracking_uri, settings.experiment, tracker.parent_run_id)
    per_budget: dict[float, int] = {}
    for record in results.records:
        per_budget[record.budget] = per_budget.get(record.budget, 0) + 1
    failed = sum(1 for tags in results.trial_tags.values() if tags.get("final_status") == "failed")
    return SearchSummary(
        search_run_id=tracker.parent_run_id, experiment=settings.experiment, tracking_uri=settings.tracking_uri,
        budgets=tuple(rungs), n_trials=len(results.trial_runs), n_evaluations=len(results.records),
        evaluations_per_budget=dict(sorted(per_budget.items())), failed_trials=failed,
        best=best_configuration(results.records), wall_s=time.time() - started,
    )


def retrain(config: dict[str, Any], budget: float, *, trainer: str = BUILTIN_RETRAINER, **context: Any) -> dict[str, Any]:
    """Train one configuration from scratch at ``budget`` (the "retrain at full budget" step).

    The built-in retrainer also reports the test error; a user's trainer gets the same keywords
    as during the search and reports whatever it reports.
    """
    if trainer.endswith(":evaluate") and trainer.startswith("jointsearch.trainers"):
        trainer = BUILTIN_RETRAINER
    return call_trainer(resolve(trainer), config, budget, **context)

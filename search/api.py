"""The Python API: what the CLI does, callable from a notebook or a user's script.

    from jointsearch.search import SearchSettings, run_search
    summary = run_search(SearchSettings(space="my_space.json", trainer="mypkg.train:fit",
                                        min_budget=1, max_budget=27))
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from jointsearch.dashboards.analysis import best_configuration
from jointsearch.dashboards.records import EvaluationRecord
from jointsearch.spaces import load_space, to_json

from .budgets import step_scale
from .presets import get_preset
from .interrupt import SearchInterrupted, interruptible
from .live import LiveDashboards
from .settings import SearchSettings
from .tracking import SearchTracker
from .trainer_api import BUILTIN_RETRAINER, call_trainer, resolve
from .validation import check_space, check_tracking_uri

log = logging.getLogger("jointsearch.search")


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
    resumed: bool = False


# Resume and heartbeat logic lives in resume.py; these names stay importable from here.
from .resume import (HEARTBEAT_TAG, INTERRUPTED_TAG, RESUMES_TAG, Heartbeat, choose_search_to_continue,  # noqa: E402
                     close_left_open, driver_tags, heartbeat_interval_s, recorded_settings)

__all__ = ["HEARTBEAT_TAG", "RESUMES_TAG", "SearchSummary", "heartbeat_interval_s", "recorded_settings", "retrain",
           "run_search"]


def run_search(settings: SearchSettings, *, resume: bool | None = None, force: bool = False,
               progress: bool = False) -> SearchSummary:
    """Validate everything, then run the search and record it in MLflow; returns what it found.

    Nothing is written (no MLflow store, no Ray results) until the settings, the space and the
    trainer have all been checked, so a typo costs nothing.

    Resuming (``resume=True``, or the same command again after a crash): the newest unfinished
    search of the experiment continues in the same MLflow parent run. Its finished evaluations
    are never run again; they warm-start the searcher (BOHB's KDEs, TPE's trials). Child runs
    the crash left RUNNING are closed as ``interrupted`` (their results up to the last finished
    rung stay); the remaining ``num_samples`` are new configurations, sampled with a seed
    shifted per resume so that a seeded searcher does not propose the same ones again. A search
    whose driver is alive is never taken over; ``force`` takes over one on another host whose
    heartbeat is not stale yet (see resume.py).

    SIGINT/SIGTERM end the search as interrupted (interrupt.py): :class:`SearchInterrupted` is
    raised after the parent run was ended KILLED, and ``resume=True`` continues it.

    ``progress``: draw the search's progress on stderr while it runs (progress.py); the CLI
    does unless ``--quiet``.
    """
    started = time.time()
    settings.validate()
    space = load_space(settings.space)
    check_space(space, f"space {settings.space}")
    if not settings.builtin_trainer:
        resolve(settings.trainer)  # fail now, in the driver, not in every worker
    rungs = list(settings.rungs)

    check_tracking_uri(settings.tracking_uri)
    previous = choose_search_to_continue(settings, resume=resume, force=force)

    hpbandster = get_preset(settings.scheduler).backend == "hpbandster"
    cluster_tags: dict[str, str] = {}
    if hpbandster:
        from .hpbandster_backend import run_hpbandster as run_backend
    else:
        from .ray_cluster import connect
        from .ray_tune import run_tune as run_backend  # Ray is heavy: imported only when a search runs

        cluster = connect(settings)  # before anything is written: a cluster that is not there costs nothing
        cluster_tags = cluster.tags()
        log.warning("%s", cluster.line())

    warm = None
    if previous is None and settings.warm_start_from:  # issue 15: read before anything is written
        from .warm_start import load_warm_start

        warm = load_warm_start(settings.tracking_uri, settings.warm_start_from, space, settings.budget_unit,
                               settings.warm_start_top)

    tracker = SearchTracker(settings.tracking_uri, settings.experiment, step_scale(rungs))
    from .results import objective_metrics

    tracker.record_metrics = tuple(objective_metrics(settings.as_params()))  # issue 15: what records keep
    observations: list[EvaluationRecord] = []
    run_settings = settings
    if previous is None:
        run_name = f"{space.name or 'space'}-{settings.scheduler}-{time.strftime('%Y%m%d-%H%M%S')}"
        settings_json = json.dumps(dataclasses.asdict(settings), indent=2, default=str)
        tracker.start_search(settings.as_params(), run_name=run_name, budget_unit=settings.budget_unit,
                             artifacts={"space.json": to_json(space), "settings.json": settings_json},
                             tags={**driver_tags(), **cluster_tags})
        from .mlflow_view import set_training_view

        set_training_view(tracker.client, tracker.experiment_id, space)  # issue 15: the UI's training view
    else:
        resumes = int(previous.parent_tags.get(RESUMES_TAG, "0")) + 1
        run_name = f"{previous.parent_tags.get('mlflow.runName', 'search')}-resume{resumes}"
        observations = list(previous.records)
        tracker.reattach(previous.search_run_id, previous.trial_runs,
                         tags={RESUMES_TAG: resumes, INTERRUPTED_TAG: "", **driver_tags(), **cluster_tags},
                         records=observations,
                         final_status={tid: tags.get("final_status", "") for tid, tags in previous.trial_tags.items()})
        close_left_open(tracker, previous)
        remaining = settings.num_samples - len(previous.trial_runs)
        run_settings = dataclasses.replace(settings, num_samples=max(0, remaining),
                                           seed=None if settings.seed is None else settings.seed + 7919 * resumes)
        tracker.log_search_metrics({"resumed_observations": len(observations)}, step=resumes)
        log.warning("resuming search %s: %d evaluations of %d trials kept, %d trials to go",
                    previous.search_run_id, len(observations), len(previous.trial_runs), max(0, remaining))

    # The live dashboards watch the search beside MLflow (listeners.py); they log through the tracker.
    dashboards = LiveDashboards(tracker.log_search_metrics, tracker.log_search_artifact, space=space,
                                settings=settings.as_params(), title=f"jointsearch: {run_name}",
                                refresh_every=settings.dashboard_every)
    dashboards.records.extend(observations)
    tracker.listeners.append(dashboards)
    heartbeat = Heartbeat(settings.tracking_uri, tracker.parent_run_id)
    heartbeat.start()
    display = None
    if progress:
        from .progress import show_progress

        display = show_progress(tracker, run_settings, rungs)
    with interruptible(raise_now=hpbandster) as guard:
        tracker.interrupt = guard
        try:
            if run_settings.num_samples > 0:
                if warm is not None:
                    tracker.set_search_tags({"jointsearch.warm_start_from": warm.source_run_id})
                    extra = {"first_configs": warm.first_configs} if warm.first_configs else {}
                    run_backend(run_settings, space, tracker, run_name, observations=warm.observations, **extra)
                elif observations:
                    run_backend(run_settings, space, tracker, run_name, observations=observations)
                else:
                    run_backend(run_settings, space, tracker, run_name)
            guard.check()
        except BaseException:
            heartbeat.stop.set()
            if display is not None:
                display.close()
            dashboards.finish()
            if guard.requested:
                tracker.set_search_tags({INTERRUPTED_TAG: guard.name})
                tracker.end_search("KILLED")
                log.warning("search %s interrupted (%s); continue it with: jointsearch search --resume "
                            "--experiment %s", tracker.parent_run_id, guard.name, settings.experiment)
                raise SearchInterrupted(guard.signum) from None
            tracker.end_search("KILLED")
            raise
        if display is not None:
            display.close()
        heartbeat.stop.set()
        dashboards.finish()
        tracker.end_search("FINISHED")
    # The summary comes from what the tracker holds: every record it built or resumed from.
    records = tracker.records
    per_budget: dict[float, int] = {}
    for record in records:
        per_budget[record.budget] = per_budget.get(record.budget, 0) + 1
    failed = sum(1 for state in tracker.trial_states().values() if state == "failed")
    best = best_configuration(records)
    from .mlflow_view import log_incumbent

    log_incumbent(tracker.client, tracker.parent_run_id, best)  # issue 15
    return SearchSummary(
        search_run_id=tracker.parent_run_id, experiment=settings.experiment, tracking_uri=settings.tracking_uri,
        budgets=tuple(rungs), n_trials=len(tracker.trial_ids()), n_evaluations=len(records),
        evaluations_per_budget=dict(sorted(per_budget.items())), failed_trials=failed,
        best=best, wall_s=time.time() - started,
        resumed=previous is not None,
    )


def retrain(config: dict[str, Any], budget: float, *, trainer: str = BUILTIN_RETRAINER, **context: Any) -> dict[str, Any]:
    """Train one configuration from scratch at ``budget`` (the "retrain at full budget" step).

    The built-in retrainer also reports the test error; a user's trainer gets the same keywords
    as during the search and reports whatever it reports.
    """
    if trainer.endswith(":evaluate") and trainer.startswith("jointsearch.trainers"):
        trainer = BUILTIN_RETRAINER
    return call_trainer(resolve(trainer), config, budget, **context)

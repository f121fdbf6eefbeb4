"""The driver's side of Ray Tune: the searcher/scheduler pairing, tracking, running the Tuner.
The trainable, which runs in the trial processes, is ray_trainable.py.

How a configuration travels through its rungs: the trainable calls the trainer once per rung
budget (``budgets.rung_budgets``), each call continuing from the state the previous one saved,
and reports once per rung with that state as a Tune checkpoint. When Hyperband pauses a trial
at a rung and later promotes it, Tune restores the latest checkpoint and the trainable picks up
at the next rung: a promoted configuration is never retrained from scratch.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from pathlib import Path
from typing import Any, Sequence

# Quiet, lean Tune: no CSV/JSON/TensorBoard loggers per trial (we track in MLflow) and no
# progress tables; on 2 cores these dominate the cost of small trials.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# Interruptions: Tune's own SIGINT handler ends fit() as if the search had finished; ours
# (search/interrupt.py) records it as interrupted and stops Tune through _InterruptStopper.
os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")

import numpy as np  # noqa: E402
from ray.tune.search import Searcher  # noqa: E402
from ray.tune.stopper import Stopper  # noqa: E402

from jointsearch.spaces.io import config_dict, optuna_distribution  # noqa: E402

from .budgets import PROGRESS_KEY
from .eval_timeout import timeout_for
from .ray_checkpoints import CheckpointPruner
from .ray_trainable import TrialPlan, trainable
from .scratch import sweep as sweep_scratch
from .presets import get_preset
from .settings import SearchSettings
from .tracking import SearchTracker, config_id
from .infeasible import record_infeasible
from .trainer_api import failure_kind

log = logging.getLogger("jointsearch.search")


def _active(space, name: str, values: dict) -> bool:
    """Whether a hyperparameter is active given the values chosen so far (parents come first)."""
    return all(all(p in values for p in _parents(c)) and c.satisfied_by_value(values)
               for c in space.parent_conditions_of[name])


def _parents(condition) -> list[str]:
    if hasattr(condition, "parent"):
        return [condition.parent.name]
    return [name for c in condition.components for name in _parents(c)]


class OptunaDefineByRun:
    """ConfigSpace -> an Optuna define-by-run function, conditions included (inactive = not suggested).

    A class rather than a closure because Tune pickles its searcher into experiment checkpoints.
    """

    def __init__(self, space):
        self.space = space

    def __call__(self, trial):
        import ConfigSpace as CS
        import optuna

        space = self.space
        values: dict[str, Any] = {}
        for name, hp in space.items():  # ConfigSpace keeps parents before children
            if not _active(space, name, values):
                continue
            if isinstance(hp, CS.Constant):
                values[name] = hp.value
                continue
            dist = optuna_distribution(hp)
            if dist is None:
                raise TypeError(f"the tpe preset cannot search {type(hp).__name__} {name!r}")
            if isinstance(dist, optuna.distributions.CategoricalDistribution):
                values[name] = trial.suggest_categorical(name, list(dist.choices))
            elif isinstance(dist, optuna.distributions.IntDistribution):
                values[name] = trial.suggest_int(name, dist.low, dist.high, log=dist.log)
            else:
                values[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
        constants = {n: v for n, v in values.items() if isinstance(space[n], CS.Constant)}
        return constants or None


class ConfigSpaceRandomSearcher(Searcher):
    """Random configurations straight from the ConfigSpace space (conditions respected).

    Ray's own random search needs a Tune search-space dict, which cannot say "momentum only
    when the optimiser is SGD"; sampling the ConfigSpace space keeps every preset on one
    definition of the space.
    """

    def __init__(self, space, seed: int | None, max_concurrent: int = 0):
        super().__init__(metric="val_error", mode="min")
        self.space = copy.deepcopy(space)
        self.space.seed(seed if seed is not None else int(np.random.randint(2**31)))
        self.max_concurrent = max_concurrent
        self.live: set[str] = set()
        self.seen: set[str] = set()  # configuration ids already evaluated (also before a resume)
        self.first: list[dict] = []  # configurations to propose before sampling (warm_start.evaluate_first)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        self.max_concurrent = max_concurrent
        return True

    def suggest(self, trial_id):
        if self.max_concurrent and len(self.live) >= self.max_concurrent:
            return None
        self.live.add(trial_id)
        if self.first:
            config = self.first.pop(0)
            self.seen.add(config_id(config))
            return config
        for _ in range(100):
            config = config_dict(dict(self.space.sample_configuration()))
            if config_id(config) not in self.seen:
                break
        self.seen.add(config_id(config))
        return config

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.live.discard(trial_id)


def warm_start(searcher, preset, space, observations, min_budget: float, *, scheduler=None, settings=None) -> int:
    """Teach a fresh searcher (and scheduler) what an interrupted or earlier search had learned;
    returns how many observations it took. What each preset learns is its own (presets.py,
    ray_presets.py): asynchronous BOHB's KDEs every evaluation at its budget (failures as bad
    points), TuneBOHB every evaluation at its budget in the scheduler's units, TPE every
    configuration's error at the highest budget it reached, random search the configurations to
    avoid. ``settings`` defaults to what the budgets need (``min_budget``)."""
    if settings is None:
        import types

        settings = types.SimpleNamespace(min_budget=min_budget)
    return preset.warm_start(searcher, scheduler, space, observations, settings)


def _is_constant(space, name: str) -> bool:
    import ConfigSpace as CS

    return name in space and isinstance(space[name], CS.Constant)


def optuna_distributions(space, params: dict) -> dict:
    dists = {name: optuna_distribution(space[name]) for name in params}
    return {name: dist for name, dist in dists.items() if dist is not None}


def _searcher_and_scheduler(settings: SearchSettings, space):
    """Build the preset's pair; each preset builds its own (presets.py, ray_presets.py)."""
    return get_preset(settings.scheduler).build(settings, space)


def _not_trainer_keys() -> frozenset[str]:
    from ray.tune.result import AUTO_RESULT_KEYS

    return frozenset(AUTO_RESULT_KEYS) | {"done", "budget", "rung", PROGRESS_KEY, "trial_id", "experiment_tag",
                                          "should_checkpoint", "hyperband_info", "iterations_since_restore", "node",
                                          "reason"}


def _bracket_tags(scheduler, trial) -> dict[str, str]:
    """Which Hyperband bracket (s = number of halvings ahead) and band a trial was placed in."""
    if hasattr(scheduler, "bracket_tags"):  # an asynchronous scheduler says what its bracket is
        return scheduler.bracket_tags(trial)
    info = getattr(scheduler, "_trial_info", {}).get(trial)
    if not info:
        return {}
    bracket, band_idx = info
    band = scheduler._hyperbands[band_idx]
    s = scheduler._s_max_1 - 1 - band.index(bracket) if bracket in band else None
    return {"bracket": str(s), "band": str(band_idx)}


def _make_callback(tracker: SearchTracker, scheduler, max_budget: float, searcher=None):
    from ray.tune import Callback

    from .ray_presets import proposal_of

    not_trainer_keys = _not_trainer_keys()

    class TrackingCallback(Callback):
        """Mirrors Tune's trial events into MLflow child runs (see tracking.py for why here)."""

        def __init__(self):
            self.reached: dict[str, float] = {}
            self.last_status: dict[str, str] = {}
            self.last_reason: dict[str, str] = {}
            self.retries: dict[str, int] = {}
            self.nodes: dict[str, list[str]] = {}
            self.reasons: dict[str, str] = {}  # why a trial was infeasible

        def on_trial_start(self, iteration, trials, trial, **info):
            if not tracker.has_trial(trial.trial_id):
                tags = _bracket_tags(scheduler, trial)
                if searcher is not None:  # "model" or "random": did the searcher's model choose it?
                    tags["proposal"] = proposal_of(searcher, trial.trial_id)
                tracker.trial_started(trial.trial_id, config_dict(trial.config), tags)
            else:
                tracker.set_trial_state(trial.trial_id, "running")

        def on_trial_result(self, iteration, trials, trial, result, **info):
            budget = float(result["budget"])
            self.last_status[trial.trial_id] = str(result.get("status", "ok"))
            if result.get("reason"):
                self.last_reason[trial.trial_id] = str(result["reason"])
            if record_infeasible(tracker, trial.trial_id, result, self.reasons):
                return  # never trained: no evaluation, no budget (the searcher still saw the result)
            self.reached[trial.trial_id] = budget
            nodes = self.nodes.setdefault(trial.trial_id, [])
            if result.get("node") and result["node"] not in nodes:
                nodes.append(result["node"])
                tracker.set_trial_tags(trial.trial_id, {"nodes": ",".join(nodes)})
            metrics = {k: v for k, v in result.items() if k not in not_trainer_keys
                       and (k == "status" or isinstance(v, (int, float)) and not isinstance(v, bool))}
            metrics = {k: v for k, v in metrics.items() if not (isinstance(v, float) and not math.isfinite(v))}
            tracker.evaluation(trial.trial_id, budget, metrics, rung=int(result.get("rung", 0)), node=result.get("node"))

        def on_step_end(self, iteration, trials, **info):
            for trial in trials:
                if trial.status in ("RUNNING", "PAUSED") and tracker.has_trial(trial.trial_id):
                    tracker.set_trial_state(trial.trial_id, trial.status.lower())

        def on_trial_complete(self, iteration, trials, trial, **info):
            status = self.last_status.get(trial.trial_id, "ok")
            if status != "ok":
                reason = self.reasons.get(trial.trial_id) or _status_reason(status, self.last_reason.get(trial.trial_id))
                tracker.trial_ended(trial.trial_id, "failed", reason, kind=status)
                return
            done = self.reached.get(trial.trial_id, 0.0) >= max_budget - 1e-9
            tracker.trial_ended(trial.trial_id, "completed" if done else "stopped")

        def on_trial_recover(self, iteration, trials, trial, **info):
            self.retries[trial.trial_id] = self.retries.get(trial.trial_id, 0) + 1
            reason = _error_line(trial)
            tracker.set_trial_tags(trial.trial_id, {"retries": self.retries[trial.trial_id], "last_error": reason[:4000]})
            tracker.set_trial_state(trial.trial_id, "retrying")

        def on_trial_error(self, iteration, trials, trial, **info):
            reason = _error_line(trial)
            tracker.trial_ended(trial.trial_id, "failed", reason, kind=failure_kind(reason))

    return TrackingCallback()


def _status_reason(status: str, reason: str | None) -> str:
    """The failure reason of a trial that reported a status other than "ok" (it did not raise)."""
    if reason:
        return f"{status}: {reason}"
    if status == "diverged":
        return "diverged: the trainer reported a non-finite loss or validation error"
    return f"{status}: reported by the trainer"


def _error_line(trial) -> str:
    error = getattr(trial, "error_file", None) or ""
    try:
        text = Path(error).read_text() if error else ""
    except OSError:
        text = ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "trial raised an error"


def _concurrency_limit(settings: SearchSettings) -> int | None:
    """Tune's limiter wraps the searcher; BOHB's schedulers must reach the searcher itself, so
    most presets limit concurrency on their own (``Preset.concurrency_limit``)."""
    return get_preset(settings.scheduler).concurrency_limit(settings)


# The user's own TUNE_MAX_PENDING_TRIALS_PG, if any, wins over ours (read once, at import).
_USER_PENDING_LIMIT = os.environ.get("TUNE_MAX_PENDING_TRIALS_PG")


class _InterruptStopper(Stopper):
    """Ends the whole Tune run once a SIGINT/SIGTERM was seen (search/interrupt.py)."""

    def __init__(self, guard):
        self.guard = guard

    def __call__(self, trial_id, result) -> bool:
        return False

    def stop_all(self) -> bool:
        return bool(self.guard is not None and self.guard.requested)


def _pending_trials_limit(settings: SearchSettings) -> int | None:
    """How many trials Tune may keep waiting for resources at once (TUNE_MAX_PENDING_TRIALS_PG);
    None leaves Tune's choice (the user set the variable themselves).

    With a searcher of its own Tune places one trial at a time ("auto" is 1 unless the searcher is
    a ConcurrencyLimiter), so free slots fill one per scheduling step: on a simulated 8-GPU node
    most stayed idle, and on a cluster each placement waits for an actor to start on some node.
    Allow as many pending trials as the runtime has slots for this search's requests (CPUs and
    GPUs per trial, the smallest packing fraction for ``auto``, ``--max-concurrent``), on a local
    runtime and on a cluster alike.
    """
    if _USER_PENDING_LIMIT is not None:
        return None
    import ray

    total = ray.cluster_resources()
    slots = total.get("CPU", 1.0) / settings.cpus_per_trial
    gpus = settings.least_gpus_per_trial
    if gpus > 0:
        slots = min(slots, total.get("GPU", 0.0) / gpus)
    if settings.max_concurrent:
        slots = min(slots, settings.max_concurrent)
    return max(1, int(slots))


def init_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = dict(include_dashboard=False, logging_level=logging.WARNING,
                                  log_to_driver=False, configure_logging=True)
    if address:
        ray.init(address=address, **kwargs)
    else:
        # "local": never join a cluster already running on this machine (see ray_cluster.py).
        # No prestarted workers: Tune gives every trial actor a runtime_env (env_vars), so trials
        # never run in the plain workers Ray starts for a first driver; those cost ~1.5 CPU-s
        # per search, at the moment the trials' own processes start on the same cores.
        ray.init(address="local", _system_config={"prestart_worker_first_driver": False}, **kwargs)


def run_tune(settings: SearchSettings, space, tracker: SearchTracker, run_name: str,
             observations: Sequence = (), first_configs: Sequence = ()) -> dict[str, int]:
    """Run the search on Ray Tune; every result goes to ``tracker`` as it arrives.

    ``observations`` are the evaluations of an interrupted search being resumed (or of an
    earlier search, warm_start.py): the searcher starts from them instead of from nothing.
    ``first_configs`` are proposed before anything else (``--warm-start-top``).
    """
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    init_ray(settings.ray_address)
    # Tune warns "Remote file not found: .../result.json" whenever a paused trial resumes before
    # its first JSON result was written; harmless here, and it buries the user's output.
    logging.getLogger("ray.tune.logger.logger").setLevel(logging.ERROR)
    rungs = settings.rungs
    timeouts = tuple(timeout_for(b, settings.budget_unit, getattr(settings, "eval_timeout", None)) for b in rungs)
    plan = TrialPlan(settings.trainer, settings.trainer_context(), rungs, settings.min_budget, timeouts,
                     constraints=settings.parsed_constraints)
    searcher, scheduler = _searcher_and_scheduler(settings, space)
    if hasattr(scheduler, "attach_tracker"):  # issue 14: adaptive-budget decisions go to MLflow
        scheduler.attach_tracker(tracker)
    if observations:
        taken = warm_start(searcher, get_preset(settings.scheduler), space, observations, settings.min_budget,
                           scheduler=scheduler, settings=settings)
        tracker.log_search_metrics({"warm_start_observations": taken})
        log.warning("the %s searcher starts from %d earlier observations", settings.scheduler, taken)
    if first_configs:
        from .warm_start import evaluate_first

        evaluate_first(searcher, list(first_configs))
    resources = {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}
    from .ray_capacity import apply_capacity  # --gpus-per-trial auto, --time-budget, --gpu-hours

    searcher, resources = apply_capacity(settings, searcher, tracker, resources)
    pending, before = _pending_trials_limit(settings), os.environ.get("TUNE_MAX_PENDING_TRIALS_PG")
    if pending:
        os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(pending)  # read once, when the Tuner starts
    storage = settings.storage_path or str(Path.cwd() / "ray_results")
    if "://" not in storage:
        storage = str(Path(storage).resolve())
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, plan=plan), resources),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                    num_samples=-1 if settings.budgeted else settings.num_samples,
                                    reuse_actors=True, max_concurrent_trials=_concurrency_limit(settings)),
        run_config=tune.RunConfig(
            name=run_name, storage_path=storage, verbose=0,
            # JSON results only (Tune reads them back); CSV and TensorBoard loggers are off.
            callbacks=[JsonLoggerCallback(), _make_callback(tracker, scheduler, settings.max_budget, searcher),
                       CheckpointPruner(getattr(settings, "keep_checkpoints", "promotable"),
                                        tracker.log_search_metrics)],
            # Tune keeps every checkpoint: forcing deletion makes it snapshot its whole state after
            # each report, which costs more than the disk; CheckpointPruner deletes instead.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            stop=_InterruptStopper(getattr(tracker, "interrupt", None)),
        ),
    )
    try:
        grid = tuner.fit()
    finally:
        sweep_scratch()  # folders of workers killed during the search (this host's only)
        if pending and before is None:
            del os.environ["TUNE_MAX_PENDING_TRIALS_PG"]
        elif pending:
            os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = before
    return {"trials": len(grid), "errors": len(grid.errors)}

"""The one module that talks to Ray Tune: the trainable, the searcher/scheduler pairing, tracking.

How a configuration travels through its rungs: the trainable calls the trainer once per rung
budget (``budgets.rung_budgets``), each call continuing from the state the previous one saved,
and reports once per rung with that state as a Tune checkpoint. When Hyperband pauses a trial
at a rung and later promotes it, Tune restores the latest checkpoint and the trainable picks up
at the next rung: a promoted configuration is never retrained from scratch.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

# Quiet, lean Tune: no CSV/JSON/TensorBoard loggers per trial (we track in MLflow) and no
# progress tables; on 2 cores these dominate the cost of small trials.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

import numpy as np  # noqa: E402
from ray.tune.search import Searcher  # noqa: E402

from jointsearch.spaces import config_dict  # noqa: E402
from jointsearch.spaces.io import optuna_distribution  # noqa: E402

from .budgets import PROGRESS_KEY, max_units, rung_budgets
from .presets import get_preset
from .settings import SearchSettings
from .tracking import SearchTracker, config_id
from .trainer_api import call_trainer, failure_kind, resolve

log = logging.getLogger("jointsearch.search")

META_FILE = "jointsearch.json"
STATE_DIR = "state"


@dataclass(frozen=True)
class TrialPlan:
    """What every trial of a search needs to know, shipped to the workers once."""

    trainer: str
    context: dict[str, Any]
    rungs: tuple[float, ...]
    min_budget: float


def trainable(config: dict, plan: TrialPlan) -> None:
    """Evaluate one configuration rung after rung, continuing from the latest checkpoint."""
    import ray
    from ray import tune

    fn = resolve(plan.trainer)
    config = config_dict(config)
    node = ray.get_runtime_context().get_node_id()[:12]  # which node ran which rung (clusters)
    work = Path(tempfile.mkdtemp(prefix="jointsearch-trial-"))
    try:
        state_dir: Path | None = None
        done = 0.0
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            restored = work / "restored"
            checkpoint.to_directory(str(restored))
            done = json.loads((restored / META_FILE).read_text())["budget"]
            if (restored / STATE_DIR).is_dir():
                state_dir = restored / STATE_DIR
        for rung, budget in enumerate(plan.rungs):
            if budget <= done + 1e-9:
                continue
            out = work / f"rung{rung}"
            (out / STATE_DIR).mkdir(parents=True)
            started = time.time()
            metrics = call_trainer(fn, config, budget, checkpoint_dir=str(state_dir) if state_dir else None,
                                   save_dir=str(out / STATE_DIR), **plan.context)
            metrics.setdefault("cost_s", time.time() - started)
            if not math.isfinite(metrics["val_error"]):
                metrics["val_error"] = float("inf")  # schedulers sort on it; MLflow skips it
            (out / META_FILE).write_text(json.dumps({"budget": budget, "rung": rung}))
            metrics.update(budget=budget, rung=rung, node=node, **{PROGRESS_KEY: budget / plan.min_budget})
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(out)))
            if state_dir is not None:
                shutil.rmtree(state_dir.parent, ignore_errors=True)
            state_dir = out / STATE_DIR
            if metrics["status"] != "ok":
                break  # a diverged configuration will not recover at a larger budget
    finally:
        shutil.rmtree(work, ignore_errors=True)


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


def warm_start(searcher, preset, space, observations, min_budget: float) -> int:
    """Teach a fresh searcher what an interrupted search had already learned; returns how many
    observations it took. BOHB gets every evaluation at its budget (in the scheduler's units, as
    TuneBOHB reports them), TPE every configuration's error at the highest budget it reached,
    and random search only needs to avoid proposing the same configurations again."""
    ok = [r for r in observations if r.status == "ok" and math.isfinite(r.val_error)]
    if preset.searcher == "bohb":
        from ray.tune.search.bohb.bohb_search import _BOHBJobWrapper

        for r in sorted(ok, key=lambda r: r.budget):
            searcher.bohber.new_result(_BOHBJobWrapper(r.val_error, r.budget / min_budget, dict(r.config)))
        return len(ok)
    if preset.searcher == "tpe":
        import optuna

        last: dict[str, Any] = {}
        for r in ok:
            if r.trial_id not in last or r.budget >= last[r.trial_id].budget:
                last[r.trial_id] = r
        for r in last.values():
            params = {k: v for k, v in r.config.items() if not _is_constant(space, k)}
            searcher._ot_study.add_trial(optuna.trial.create_trial(
                params=params, distributions=optuna_distributions(space, params), value=r.val_error))
        return len(last)
    searcher.seen.update(config_id(r.config) for r in observations)
    return len(ok)


def _is_constant(space, name: str) -> bool:
    import ConfigSpace as CS

    return name in space and isinstance(space[name], CS.Constant)


def optuna_distributions(space, params: dict) -> dict:
    dists = {name: optuna_distribution(space[name]) for name in params}
    return {name: dist for name, dist in dists.items() if dist is not None}


def _searcher_and_scheduler(settings: SearchSettings, space):
    """Build the preset's pair; which pairs exist is decided in presets.py, not here."""
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, HyperBandForBOHB, HyperBandScheduler

    preset = get_preset(settings.scheduler)
    max_t = max_units(settings.min_budget, settings.max_budget)
    common = dict(metric="val_error", mode="min")
    if preset.searcher == "bohb":
        from ray.tune.search.bohb import TuneBOHB

        searcher = TuneBOHB(space=space, seed=settings.seed, max_concurrent=settings.max_concurrent, **common)
    elif preset.searcher == "tpe":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        sampler = optuna.samplers.TPESampler(seed=settings.seed)
        searcher = OptunaSearch(space=OptunaDefineByRun(space), sampler=sampler, **common)
    else:
        searcher = ConfigSpaceRandomSearcher(space, settings.seed, settings.max_concurrent)

    if preset.scheduler == "hyperband_bohb":
        scheduler = HyperBandForBOHB(time_attr=PROGRESS_KEY, max_t=max_t, reduction_factor=settings.eta, **common)
    elif preset.scheduler == "hyperband":
        scheduler = HyperBandScheduler(time_attr=PROGRESS_KEY, max_t=max_t, reduction_factor=settings.eta, **common)
    elif preset.scheduler == "asha":
        scheduler = AsyncHyperBandScheduler(time_attr=PROGRESS_KEY, max_t=max_t, grace_period=1,
                                            reduction_factor=settings.eta, brackets=1, **common)
    else:
        scheduler = FIFOScheduler()
    return searcher, scheduler


def _not_trainer_keys() -> frozenset[str]:
    from ray.tune.result import AUTO_RESULT_KEYS

    return frozenset(AUTO_RESULT_KEYS) | {"done", "budget", "rung", PROGRESS_KEY, "trial_id", "experiment_tag",
                                          "should_checkpoint", "hyperband_info", "iterations_since_restore", "node"}


def _bracket_tags(scheduler, trial) -> dict[str, str]:
    """Which Hyperband bracket (s = number of halvings ahead) and band a trial was placed in."""
    info = getattr(scheduler, "_trial_info", {}).get(trial)
    if not info:
        return {}
    bracket, band_idx = info
    band = scheduler._hyperbands[band_idx]
    s = scheduler._s_max_1 - 1 - band.index(bracket) if bracket in band else None
    return {"bracket": str(s), "band": str(band_idx)}


def _make_callback(tracker: SearchTracker, scheduler, max_budget: float):
    from ray.tune import Callback

    not_trainer_keys = _not_trainer_keys()

    class TrackingCallback(Callback):
        """Mirrors Tune's trial events into MLflow child runs (see tracking.py for why here)."""

        def __init__(self):
            self.reached: dict[str, float] = {}
            self.last_status: dict[str, str] = {}
            self.retries: dict[str, int] = {}
            self.nodes: dict[str, list[str]] = {}

        def on_trial_start(self, iteration, trials, trial, **info):
            if not tracker.has_trial(trial.trial_id):
                tracker.trial_started(trial.trial_id, config_dict(trial.config), _bracket_tags(scheduler, trial))
            else:
                tracker.set_trial_state(trial.trial_id, "running")

        def on_trial_result(self, iteration, trials, trial, result, **info):
            budget = float(result["budget"])
            self.reached[trial.trial_id] = budget
            self.last_status[trial.trial_id] = str(result.get("status", "ok"))
            nodes = self.nodes.setdefault(trial.trial_id, [])
            if result.get("node") and result["node"] not in nodes:
                nodes.append(result["node"])
                tracker.set_trial_tags(trial.trial_id, {"nodes": ",".join(nodes)})
            metrics = {k: v for k, v in result.items() if k not in not_trainer_keys
                       and (k == "status" or isinstance(v, (int, float)) and not isinstance(v, bool))}
            metrics = {k: v for k, v in metrics.items() if not (isinstance(v, float) and not math.isfinite(v))}
            tracker.evaluation(trial.trial_id, budget, metrics, rung=int(result.get("rung", 0)))

        def on_step_end(self, iteration, trials, **info):
            for trial in trials:
                if trial.status in ("RUNNING", "PAUSED") and tracker.has_trial(trial.trial_id):
                    tracker.set_trial_state(trial.trial_id, trial.status.lower())

        def on_trial_complete(self, iteration, trials, trial, **info):
            status = self.last_status.get(trial.trial_id, "ok")
            if status != "ok":
                tracker.trial_ended(trial.trial_id, "failed", f"{status}: the validation error was not finite",
                                    kind=status)
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


def _error_line(trial) -> str:
    error = getattr(trial, "error_file", None) or ""
    try:
        text = Path(error).read_text() if error else ""
    except OSError:
        text = ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "trial raised an error"


def _concurrency_limit(settings: SearchSettings) -> int | None:
    """Tune's limiter wraps the searcher; BOHB's scheduler must reach TuneBOHB itself (it calls
    ``searcher.on_pause``), so BOHB and our random searcher limit concurrency on their own."""
    if settings.max_concurrent and get_preset(settings.scheduler).searcher == "tpe":
        return settings.max_concurrent
    return None


def init_ray(address: str | None) -> None:
    import ray

    if not address:
        # On a laptop, one trial waiting for resources at a time keeps Tune's bookkeeping small;
        # on a cluster, Tune's default lets it place trials on many nodes at once.
        os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", "1")
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = dict(include_dashboard=False, logging_level=logging.WARNING,
                                  log_to_driver=False, configure_logging=True)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(**kwargs)


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
    rungs = tuple(rung_budgets(settings.min_budget, settings.max_budget, settings.eta))
    plan = TrialPlan(settings.trainer, settings.trainer_context(), rungs, settings.min_budget)
    searcher, scheduler = _searcher_and_scheduler(settings, space)
    if observations:
        taken = warm_start(searcher, get_preset(settings.scheduler), space, observations, settings.min_budget)
        tracker.log_search_metrics({"warm_start_observations": taken})
        log.warning("the %s searcher starts from %d earlier observations", settings.scheduler, taken)
    if first_configs:
        from .warm_start import evaluate_first

        evaluate_first(searcher, list(first_configs))
    resources = {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}
    storage = settings.storage_path or str(Path.cwd() / "ray_results")
    if "://" not in storage:
        storage = str(Path(storage).resolve())
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, plan=plan), resources),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=settings.num_samples,
                                    reuse_actors=True, max_concurrent_trials=_concurrency_limit(settings)),
        run_config=tune.RunConfig(
            name=run_name, storage_path=storage, verbose=0,
            # JSON results only (Tune reads them back); CSV and TensorBoard loggers are off.
            callbacks=[JsonLoggerCallback(), _make_callback(tracker, scheduler, settings.max_budget)],
            # Every rung's checkpoint is kept (a handful per trial): forcing deletion makes Tune
            # snapshot its whole state after each report, which costs more than the disk.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
        ),
    )
    grid = tuner.fit()
    return {"trials": len(grid), "errors": len(grid.errors)}

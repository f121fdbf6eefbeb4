"""What a cluster can hold: memory-aware GPU packing and time / GPU-hour budgets (Ray side).

Two decisions are taken *before* a configuration is handed to Ray Tune, so both live in one
wrapper around the preset's searcher, :class:`CapacitySearcher`:

* **Packing** (``--gpus-per-trial auto``): each configuration asks Ray for the fraction of a GPU
  that ``jointsearch.trainers.memory:plan_gpu`` predicts (resolved by import path, so this
  module never imports torch; the calibration probe runs once, in a Ray task on a GPU). A
  configuration that cannot fit on one device is never started: the searcher is told it was
  a bad point (``val_error`` = inf, status ``"infeasible"``), it gets a FAILED MLflow run with
  ``failure_kind=infeasible`` and the reason, and the wrapper asks for another configuration.
* **Budgets** (``--time-budget`` / ``--gpu-hours``): new configurations keep being started
  until the remaining budget is below the expected cost of one more, then the searcher says
  FINISHED and the running trials end normally. Tune's ``TuneConfig(time_budget_s=...)``
  instead stops every running trial at the deadline, throwing their work away.

The wrapper forwards everything else to the preset's searcher (BOHB's scheduler calls
``on_pause``/``on_unpause`` on it), translating trial ids where it had to ask twice.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable, Mapping

from ray.tune.search import Searcher

from jointsearch.spaces import config_dict

from .budgets import PROGRESS_KEY
from .trainer_api import resolve

log = logging.getLogger("jointsearch.search")

MEMORY_PLANNER = "jointsearch.trainers.memory:plan_gpu"
MEMORY_CALIBRATION = "jointsearch.trainers.memory:calibrate"
INFEASIBLE = "infeasible"
GIB = 2 ** 30

_calibrations: dict[tuple[str | None, float], dict] = {}  # one probe per cluster and device size


def calibrate_on_cluster(ray_address: str | None, gpu_memory_gib: float) -> dict:
    """The memory calibration of one GPU of the cluster, probed once in a Ray task holding a GPU.

    ``gpu_memory_gib`` > 0 sets the device size (needed for logical GPUs without CUDA, where
    the probe measures on the CPU); 0 takes the GPU's own.
    """
    import ray

    key = (ray_address, gpu_memory_gib)
    if key not in _calibrations:
        size = int(gpu_memory_gib * GIB) if gpu_memory_gib > 0 else None

        @ray.remote(num_gpus=1, num_cpus=0)
        def probe(size: int | None) -> dict:
            import torch

            fn = resolve(MEMORY_CALIBRATION)
            if torch.cuda.is_available():
                return fn("cuda", size)
            if size is None:
                raise ValueError("no CUDA device on the GPU node: give --gpu-memory-gib for --gpus-per-trial auto")
            return fn("cpu", size)

        _calibrations[key] = ray.get(probe.remote(size))
        cal = _calibrations[key]
        log.warning("memory calibration on %s: scale %.2f, overhead %.0f MiB, device %.1f GiB", cal["device"],
                    cal["scale"], cal["overhead_bytes"] / 2**20, cal["device_bytes"] / GIB)
    return _calibrations[key]


class GpuPlanner:
    """config -> plan (``plan_gpu``'s dict), cached by configuration. Picklable: Tune ships the
    resource function with the trainable."""

    def __init__(self, calibration: Mapping[str, Any], dataset: str, grid: int = 8):
        self.calibration, self.dataset, self.grid = dict(calibration), dataset, grid
        self._cache: dict[str, dict] = {}

    def __call__(self, config: Mapping[str, Any]) -> dict:
        from .tracking import config_id

        config = config_dict(dict(config))
        key = config_id(config)
        if key not in self._cache:
            self._cache[key] = resolve(MEMORY_PLANNER)(config, self.calibration, dataset=self.dataset, grid=self.grid)
        return self._cache[key]


class AutoGpuResources:
    """Tune's per-configuration resource request: ``cpus`` and the planned fraction of a GPU."""

    def __init__(self, planner: GpuPlanner, cpus: float):
        self.planner, self.cpus = planner, cpus

    def __call__(self, config: Mapping[str, Any]):
        from ray import tune

        plan = self.planner(config)
        return tune.PlacementGroupFactory([{"CPU": self.cpus, "GPU": plan["fraction"]}] if plan["feasible"]
                                          else [{"CPU": self.cpus}])


class CapacitySearcher(Searcher):
    """The preset's searcher, minus configurations that cannot fit and suggestions past a budget.

    ``planner``: config -> plan dict (None: no packing). ``on_infeasible(trial_id, config, plan)``
    records a configuration that was never started. ``time_budget_s`` / ``gpu_seconds``: 0 for
    none. ``gpus_per_trial``: the fixed request, used to count GPU-seconds without packing.
    """

    def __init__(self, searcher: Searcher, *, planner: Callable[[Mapping], dict] | None = None,
                 on_infeasible: Callable[[str, dict, dict], None] | None = None, time_budget_s: float = 0.0,
                 gpu_seconds: float = 0.0, gpus_per_trial: float = 1.0, min_budget: float = 1.0,
                 max_tries: int = 100):
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self.searcher = searcher
        self.planner, self.on_infeasible = planner, on_infeasible
        self.time_budget_s, self.gpu_seconds = float(time_budget_s), float(gpu_seconds)
        self.gpus_per_trial, self.min_budget, self.max_tries = gpus_per_trial, min_budget, max_tries
        self.started_at = time.time()  # the time budget counts from here (Tune's start-up included)
        self.alias: dict[str, str] = {}  # Tune's trial id -> the id the wrapped searcher knows
        self.suggested_at: dict[str, float] = {}
        self.fraction: dict[str, float] = {}
        self.durations: list[float] = []  # wall seconds from suggestion to completion, per trial
        self.gpu_costs: list[float] = []  # GPU-seconds per completed trial
        self.trial_gpu_s: dict[str, float] = {}
        self.spent_gpu_s = 0.0
        self.first_result_s: list[float] = []
        self.infeasible = 0
        self.stopped_reason = ""

    # --- forwarding ------------------------------------------------------------------------
    def __getattr__(self, name: str):
        if name == "searcher":  # unpickling: no wrapped searcher yet
            raise AttributeError(name)
        return getattr(self.searcher, name)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["on_infeasible"] = None  # the MLflow tracker stays in the driver
        return state

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        ok = self.searcher.set_search_properties(metric, mode, config, **spec)
        self._metric, self._mode = self.searcher.metric, self.searcher.mode
        return ok

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.searcher.set_max_concurrency(max_concurrent)

    def save(self, checkpoint_path: str):
        return self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str):
        return self.searcher.restore(checkpoint_path)

    def get_state(self) -> dict:
        """What Tune's experiment checkpoint keeps of a wrapper (the wrapped searcher saves itself)."""
        return {"spent_gpu_s": self.spent_gpu_s, "durations": list(self.durations), "gpu_costs": list(self.gpu_costs),
                "infeasible": self.infeasible, "stopped_reason": self.stopped_reason}

    def set_state(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)

    def _inner(self, trial_id: str) -> str:
        return self.alias.get(trial_id, trial_id)

    def on_pause(self, trial_id: str):
        if hasattr(self.searcher, "on_pause"):
            self.searcher.on_pause(self._inner(trial_id))

    def on_unpause(self, trial_id: str):
        if hasattr(self.searcher, "on_unpause"):
            self.searcher.on_unpause(self._inner(trial_id))

    # --- the two decisions ------------------------------------------------------------------
    def suggest(self, trial_id: str):
        now = time.time()
        reason = self._budget_exhausted(now)
        if reason:
            if not self.stopped_reason:
                self.stopped_reason = reason
                log.warning("no new configurations: %s", reason)
            return Searcher.FINISHED
        for attempt in range(self.max_tries):
            inner_id = trial_id if attempt == 0 else f"{trial_id}-{attempt}"
            config = self.searcher.suggest(inner_id)
            if config is None or config == Searcher.FINISHED:
                return config
            plan = self.planner(config) if self.planner is not None else None
            if plan is None or plan["feasible"]:
                if inner_id != trial_id:
                    self.alias[trial_id] = inner_id
                self.suggested_at[trial_id] = now
                self.fraction[trial_id] = plan["fraction"] if plan is not None else self.gpus_per_trial
                return config
            self._tell_infeasible(inner_id, config, plan)
        log.warning("%d configurations in a row could not fit one device; no new configurations", self.max_tries)
        return Searcher.FINISHED

    def _tell_infeasible(self, inner_id: str, config: dict, plan: dict) -> None:
        """The searcher learns the point as the worst possible result at the smallest budget."""
        self.infeasible += 1
        result = {self.searcher.metric: math.inf, "status": INFEASIBLE, "reason": plan["reason"],
                  "budget": self.min_budget, PROGRESS_KEY: 1.0, "training_iteration": 1,
                  "hyperband_info": {"budget": 1.0}, "config": config}
        try:
            self.searcher.on_trial_result(inner_id, result)
        finally:
            self.searcher.on_trial_complete(inner_id, result)
        if self.on_infeasible is not None:
            self.on_infeasible(f"{inner_id}-{INFEASIBLE}", config_dict(dict(config)), plan)

    def _budget_exhausted(self, now: float) -> str:
        if self.time_budget_s > 0:
            elapsed = now - self.started_at
            expected = _mean(self.durations) or _mean(self.first_result_s)
            if elapsed + expected >= self.time_budget_s:
                return (f"time budget: {elapsed:.0f} s of {self.time_budget_s:.0f} s spent, a new configuration "
                        f"takes about {expected:.0f} s")
        if self.gpu_seconds > 0:
            expected = _mean(self.gpu_costs)
            live = len(self.suggested_at)
            projected = self.spent_gpu_s + 0.5 * expected * live + expected
            if projected >= self.gpu_seconds:
                return (f"GPU budget: {self.spent_gpu_s / 3600:.3f} of {self.gpu_seconds / 3600:.3f} GPU-hours spent, "
                        f"{live} configurations running, a new one costs about {expected / 3600:.4f}")
        return ""

    # --- results ----------------------------------------------------------------------------
    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.suggested_at and trial_id not in self.trial_gpu_s:
            self.first_result_s.append(time.time() - self.suggested_at[trial_id])
        cost = float(result.get("cost_s", 0.0) or 0.0) * self.fraction.get(trial_id, self.gpus_per_trial)
        self.trial_gpu_s[trial_id] = self.trial_gpu_s.get(trial_id, 0.0) + cost
        self.spent_gpu_s += cost
        self.searcher.on_trial_result(self._inner(trial_id), result)

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        started = self.suggested_at.pop(trial_id, None)
        if started is not None:
            self.durations.append(time.time() - started)
            self.gpu_costs.append(self.trial_gpu_s.get(trial_id, 0.0))
        self.searcher.on_trial_complete(self._inner(trial_id), result=result, error=error)
        self.alias.pop(trial_id, None)



def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def apply_capacity(settings, searcher: Searcher, tracker, resources: Any) -> tuple[Searcher, Any]:
    """run_tune's one call: wrap ``searcher`` and replace ``resources`` as the settings ask
    (``--gpus-per-trial auto``, ``--time-budget``, ``--gpu-hours``); unchanged otherwise."""
    if not settings.gpu_packing and not settings.budgeted:
        return searcher, resources
    planner = None
    if settings.gpu_packing:
        planner = GpuPlanner(calibrate_on_cluster(settings.ray_address, settings.gpu_memory_gib), settings.dataset)
        resources = AutoGpuResources(planner, settings.cpus_per_trial)

    def record_infeasible(trial_id: str, config: dict, plan: dict) -> None:
        tracker.trial_started(trial_id, config, {"need_gib": f"{plan['need_bytes'] / GIB:.2f}"})
        tracker.set_trial_tags(trial_id, {"last_status": INFEASIBLE})
        tracker.trial_ended(trial_id, "failed", plan["reason"], kind=INFEASIBLE)

    wrapped = CapacitySearcher(
        searcher, planner=planner, on_infeasible=record_infeasible, time_budget_s=settings.time_budget_s,
        gpu_seconds=settings.gpu_hours * 3600.0, min_budget=settings.min_budget,
        gpus_per_trial=1.0 if settings.gpu_packing else float(settings.gpus_per_trial or 1.0))
    return wrapped, resources

"""The Ray Tune objects behind each preset of presets.py: how each builds and warm-starts itself.

Every ``build_<preset>(settings, space)`` returns a fresh ``(searcher, scheduler)`` pair; every
``warm_start_<preset>(searcher, scheduler, space, observations, settings)`` teaches that pair the
evaluations of an interrupted search and returns how many it took. presets.py names them; only
Ray-side modules import this one.

Every searcher built here records where each configuration came from in ``proposals`` (trial
id -> "model" | "random"), which the tracking callback writes as the trial's ``proposal`` tag.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

from .adaptive_budgets import AdaptiveBudgets
from .budgets import PROGRESS_KEY, max_units
from .ray_async import AsyncSuccessiveHalving, KDESearcher, trial_slots
from .ray_tune import ConfigSpaceRandomSearcher, OptunaDefineByRun, _is_constant, optuna_distributions
from .tracking import config_id

COMMON = dict(metric="val_error", mode="min")


def _ok(observations: Sequence) -> list:
    return [r for r in observations if r.status == "ok" and math.isfinite(r.val_error)]


def _rungs(settings) -> list[float]:
    return list(settings.rungs)


# -- bohb: asynchronous BOHB ------------------------------------------------------------------


def build_bohb(settings, space):
    rungs = _rungs(settings)
    slots = functools.partial(trial_slots, settings.cpus_per_trial, settings.least_gpus_per_trial,
                              settings.max_concurrent)
    adaptive = AdaptiveBudgets(rungs) if adaptive_budgets_on(settings) else None
    objectives = _objectives(settings)
    scheduler = AsyncSuccessiveHalving(n_rungs=len(rungs), eta=settings.eta, num_samples=settings.num_samples,
                                       slots=slots, adaptive=adaptive, objectives=objectives)
    searcher = KDESearcher(space, rung_budgets=rungs, seed=settings.seed, gate=scheduler.wants_new_trial,
                           untrusted=scheduler.dropped_budgets, objectives=objectives,
                           model=getattr(settings, "model", "kde"))
    return searcher, scheduler


def adaptive_budgets_on(settings) -> bool:
    """``--adaptive-budgets``: auto (the default) and on mean on for bohb (settings.validate
    refuses on for another preset)."""
    return getattr(settings, "adaptive_budgets", "auto") in ("auto", "on")


def _objectives(settings) -> tuple:
    """The search's objectives (issue 15); settings without the field (older callers): val_error."""
    from jointsearch.dashboards.pareto import parse_objectives

    return parse_objectives(getattr(settings, "objectives", ("val_error",)))


def warm_start_bohb(searcher: KDESearcher, scheduler: AsyncSuccessiveHalving, space, observations: Sequence,
                    settings) -> int:
    """Every evaluation goes to the model at its budget, failures as bad points (+inf), and to
    the scheduler's rungs, so that new configurations are promoted against the old ones too."""
    rungs = list(searcher.rung_budgets)
    index = {round(b, 9): k for k, b in enumerate(rungs)}
    taken = 0
    for r in observations:
        if not r.config:
            continue
        ok = r.status == "ok" and math.isfinite(r.val_error)
        budget = r.budget if r.budget > 0 else rungs[0]  # failed before any rung: a bad point at the first
        result = {"status": r.status.value if ok else "failed", "val_error": r.val_error, "cost_s": r.cost_s,
                  "n_params": r.n_params, "budget_spent": r.budget_spent, **r.metrics}
        try:
            searcher.observe(r.config, budget, result)
        except Exception:  # noqa: BLE001 - a configuration the space no longer accepts teaches nothing
            continue
        taken += 1
        rung = index.get(round(budget, 9))
        if rung is not None and scheduler is not None:
            scheduler.warm_start([(f"resumed-{r.trial_id}", rung, scheduler.objective_value(result))])
    return taken


# -- bohb-sync: Ray's TuneBOHB + HyperBandForBOHB ---------------------------------------------


def build_bohb_sync(settings, space):
    from .ray_bohb_sync import TaggedTuneBOHB  # imports hpbandster and statsmodels: only for this preset
    from .ray_hyperband import HyperBandForBOHBProcessed

    searcher = TaggedTuneBOHB(space=space, seed=settings.seed, max_concurrent=settings.max_concurrent, **COMMON)
    scheduler = HyperBandForBOHBProcessed(time_attr=PROGRESS_KEY,
                                          max_t=max_units(settings.min_budget, settings.max_budget),
                                          reduction_factor=settings.eta, **COMMON)
    return searcher, scheduler


def warm_start_bohb_sync(searcher, scheduler, space, observations: Sequence, settings) -> int:
    """Every evaluation at its budget, in the scheduler's units, as TuneBOHB reports them."""
    from ray.tune.search.bohb.bohb_search import _BOHBJobWrapper

    ok = _ok(observations)
    for r in sorted(ok, key=lambda r: r.budget):
        searcher.bohber.new_result(_BOHBJobWrapper(r.val_error, r.budget / settings.min_budget, dict(r.config)))
    return len(ok)


# -- random configurations: hyperband, asha, random -------------------------------------------


def _random_searcher(settings, space):
    return ConfigSpaceRandomSearcher(space, settings.seed, settings.max_concurrent)


def build_hyperband(settings, space):
    from .ray_hyperband import HyperBand

    return _random_searcher(settings, space), HyperBand(
        time_attr=PROGRESS_KEY, max_t=max_units(settings.min_budget, settings.max_budget),
        reduction_factor=settings.eta, **COMMON)


def _asha(settings):
    from ray.tune.schedulers import AsyncHyperBandScheduler

    return AsyncHyperBandScheduler(time_attr=PROGRESS_KEY, max_t=max_units(settings.min_budget, settings.max_budget),
                                   grace_period=1, reduction_factor=settings.eta, brackets=1, **COMMON)


def build_asha(settings, space):
    return _random_searcher(settings, space), _asha(settings)


def build_random(settings, space):
    from ray.tune.schedulers import FIFOScheduler

    return _random_searcher(settings, space), FIFOScheduler()


def warm_start_random(searcher, scheduler, space, observations: Sequence, settings) -> int:
    """Random search only needs to avoid proposing the configurations it already tried."""
    searcher.seen.update(config_id(r.config) for r in observations)
    return len(_ok(observations))


warm_start_hyperband = warm_start_asha = warm_start_random


# -- tpe: Optuna's TPE + ASHA -----------------------------------------------------------------


def proposal_of(searcher, trial_id: str) -> str:
    """Where a trial's configuration came from: "model" or "random" (the ``proposal`` tag).

    Our searchers record it in ``proposals``; Optuna's TPE samples at random for its first
    ``n_startup_trials`` trials (earlier, warm-started trials included) and from its model after.
    """
    proposals = getattr(searcher, "proposals", None)
    if proposals is not None:
        return proposals.get(trial_id, "random")
    ot_trial = getattr(searcher, "_ot_trials", {}).get(trial_id)
    sampler = getattr(getattr(searcher, "_sampler", None), "_n_startup_trials", None)
    if ot_trial is not None and sampler is not None:
        return "model" if ot_trial.number >= sampler else "random"
    return "random"


def build_tpe(settings, space):
    import optuna

    sampler = optuna.samplers.TPESampler(seed=settings.seed)
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch(space=OptunaDefineByRun(space), sampler=sampler, **COMMON)
    return searcher, _asha(settings)


def warm_start_tpe(searcher, scheduler, space, observations: Sequence, settings) -> int:
    """Every configuration's error at the highest budget it reached."""
    import optuna

    last: dict[str, Any] = {}
    for r in _ok(observations):
        if r.trial_id not in last or r.budget >= last[r.trial_id].budget:
            last[r.trial_id] = r
    for r in last.values():
        params = {k: v for k, v in r.config.items() if not _is_constant(space, k)}
        searcher._ot_study.add_trial(optuna.trial.create_trial(
            params=params, distributions=optuna_distributions(space, params), value=r.val_error))
    return len(last)

"""A discrete-event stand-in for Ray Tune's controller, driving the PRODUCTION asynchronous BOHB.

Why: ``bench/optimizers.py`` runs jointsearch's presets through real Ray, about 100 s per run
on this machine, most of it Ray's own overhead around trainers that take microseconds; 10 seeds
x several problems x contenders is hours. Here the same objects the ``bohb`` preset builds
(``ray_presets.build_bohb``: :class:`~jointsearch.search.ray_async.AsyncSuccessiveHalving` and
:class:`~jointsearch.search.ray_async.KDESearcher`, with or without the adaptive budgets) are
driven by a small controller with Tune's trial statuses, so a run takes seconds.

What the controller does, as Tune's loop does for these two objects:

- ``slots`` trials run at once; an evaluation from budget ``a`` to the next rung's ``b`` takes
  ``(b - a) x jitter`` simulated seconds (continuation: the default ``restarts`` protocol), with
  a jitter in [0.8, 1.2] from a seeded generator, so results arrive out of order as on a cluster;
- while a slot is free it asks the searcher for a new configuration (the searcher's gate is the
  scheduler's ``wants_new_trial``, as in production; a new trial is PENDING and announced with
  ``on_trial_add``), then the scheduler's ``choose_trial_to_run`` picks what starts (a PENDING
  trial, or a PAUSED one it promotes), until it returns None;
- the earliest finishing evaluation reports ``{rung, budget, val_error, status}`` to the
  searcher, then to the scheduler: CONTINUE runs the next rung at once in the same slot, PAUSE
  frees the slot; the last rung ends the trial (TERMINATED, ``on_trial_complete``);
- ``stop_trial`` (the scheduler's end-of-search sweep) terminates a paused trial.

It stops when nothing runs and nothing can start, or once the budget spent passes ``stop_after``
(max-budget units; the benchmark cuts every contender at the same total anyway).

What it leaves out: Ray's latencies (scheduling, checkpoint save/restore), failures and
retries, and Tune's limit on pending trials (here new trials are proposed only for free slots,
which is what the scheduler's gate asks for anyway). ``tests/bench/test_simulate.py`` checks
it against a small real search.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["SimTrial", "SimController", "simulate_bohb"]


@dataclass(eq=False)
class SimTrial:
    trial_id: str
    config: dict
    status: str = "PENDING"
    rung: int = -1  # last rung reported
    trained: float = 0.0  # budget trained so far
    started: float = 0.0  # simulated clock when its current evaluation started


@dataclass
class SimEvaluation:
    trial_id: str
    config: dict
    rung: int
    budget: float
    value: float
    cost: float  # budget units trained for this evaluation
    started: float  # simulated clock
    finished: float


@dataclass
class SimController:
    """The part of Tune's controller the scheduler talks to."""

    trials: list[SimTrial] = field(default_factory=list)

    def get_trials(self) -> list[SimTrial]:
        return self.trials

    def stop_trial(self, trial: SimTrial) -> None:
        trial.status = "TERMINATED"


def simulate_bohb(objective: Callable[[dict, float], float], space, budgets: list[float], *, eta: float = 3.0,
                  slots: int = 2, num_samples: int = 1000, seed: int = 0, adaptive: bool = True,
                  stop_after: float | None = None, max_budget: float | None = None, pooled: bool = False,
                  kde: dict[str, Any] | None = None) -> dict[str, Any]:
    """One asynchronous BOHB search on ``objective(config, budget) -> value`` (minimised).

    Returns ``{"evaluations": [SimEvaluation...] in finishing order, "decisions": [...],
    "scheduler": ..., "searcher": ...}``. ``stop_after`` in max-budget units. ``pooled``: the
    searcher's experimental pooled model (kde.py; not what the preset runs). ``kde``: keyword
    arguments of the searcher's KDEProposer (e.g. ``top_n_percent``; bench/budget_oracle.py).
    """
    from ray.tune.schedulers import TrialScheduler

    from jointsearch.search.adaptive_budgets import AdaptiveBudgets
    from jointsearch.search.ray_async import AsyncSuccessiveHalving, KDESearcher

    top = max_budget or budgets[-1]
    scheduler = AsyncSuccessiveHalving(n_rungs=len(budgets), eta=eta, num_samples=num_samples,
                                       slots=lambda: slots, adaptive=AdaptiveBudgets(budgets) if adaptive else None)
    searcher = KDESearcher(space, rung_budgets=budgets, seed=seed, gate=scheduler.wants_new_trial,
                           untrusted=scheduler.dropped_budgets, pooled=pooled, **(kde or {}))
    ctl = SimController()
    rng = np.random.default_rng([seed, 7])
    clock, spent = 0.0, 0.0
    events: list[tuple[float, int, SimTrial]] = []
    order = itertools.count()
    evaluations: list[SimEvaluation] = []
    ids = (f"sim{i:05d}" for i in itertools.count())

    def start(trial: SimTrial) -> None:
        trial.status = "RUNNING"
        trial.started = clock
        nxt = trial.rung + 1
        heapq.heappush(events, (clock + (budgets[nxt] - trial.trained) * rng.uniform(0.8, 1.2), next(order), trial))

    def running() -> int:
        return sum(1 for t in ctl.trials if t.status == "RUNNING")

    while True:
        # Fill free slots: a new configuration if the searcher (gated by the scheduler) gives one,
        # then whatever the scheduler picks, as Tune does on every step.
        while running() < slots and (stop_after is None or spent < stop_after * top):
            if scheduler.added < num_samples and not any(t.status == "PENDING" for t in ctl.trials):
                trial_id = next(ids)
                config = searcher.suggest(trial_id)
                if config is not None:
                    trial = SimTrial(trial_id, config)
                    ctl.trials.append(trial)
                    scheduler.on_trial_add(ctl, trial)
            chosen = scheduler.choose_trial_to_run(ctl)
            if chosen is None:
                break
            start(chosen)
        if not events:
            if stop_after is None or spent < stop_after * top:  # the scheduler's end-of-search sweep
                scheduler.choose_trial_to_run(ctl)
            break
        clock, _, trial = heapq.heappop(events)
        rung = trial.rung + 1
        value = float(objective(trial.config, budgets[rung]))
        ok = math.isfinite(value)
        cost = budgets[rung] - trial.trained
        spent += cost
        trial.rung, trial.trained = rung, budgets[rung]
        evaluations.append(SimEvaluation(trial.trial_id, trial.config, rung, budgets[rung], value, cost, trial.started,
                                         clock))
        result = {"rung": rung, "budget": budgets[rung], "val_error": value if ok else math.inf,
                  "status": "ok" if ok else "failed"}
        searcher.on_trial_result(trial.trial_id, result)
        action = scheduler.on_trial_result(ctl, trial, result)
        if not ok or rung == len(budgets) - 1:
            trial.status = "TERMINATED"
            searcher.on_trial_complete(trial.trial_id, result)
        elif action == TrialScheduler.CONTINUE and (stop_after is None or spent < stop_after * top):
            start(trial)
        else:
            trial.status = "PAUSED"
    return {"evaluations": evaluations, "scheduler": scheduler, "searcher": searcher,
            "decisions": [d.to_json() for d in scheduler.adaptive.decisions] if scheduler.adaptive else [],
            "clock": clock}

"""Asynchronous BOHB on Ray Tune: the KDE proposer (kde.py) + asynchronous successive-halving promotion.

Why not Ray's HyperBandForBOHB: it is synchronous, a rung waits for its slowest configuration
before anyone is promoted, and in a joint architecture space the slowest is ~8x the fastest, so
most slots idle (issue 11). Here, as in ASHA's promotion variant (Li et al. 2020) with BOHB's
model (Klein et al. 2020's asynchronous BOHB; Syne Tune's ``BOHB`` baseline):

- every new configuration starts at the smallest rung; when it reports there (or at any rung but
  the last) the scheduler PAUSEs it, which checkpoints it and frees its slot;
- a free slot goes first to a paused configuration in the top 1/eta of its rung that has not been
  promoted yet (highest rung first); only when there is none does the searcher propose a new
  configuration. No slot ever waits for a rung to fill. A configuration that is promotable the
  moment it reports simply continues (no pause and restore);
- a promotion quota: at most floor(n / eta) configurations are promoted out of a rung that holds n
  results, so each rung gets the share of the budget that successive halving gives it. ASHA's own
  rule (Li et al. 2020) has no quota: a configuration that enters the rung's top 1/eta later is
  promoted too, even when as many have gone on already. With a model whose proposals improve,
  almost every new configuration enters the top 1/eta, so almost all were promoted: on Hartmann-6
  (bench/simulate.py, 1 slot, 16 max-budgets) the rungs held 60-120, 32-64, 24-37, 17-20 and 8-13
  configurations, about half promoted at each rung against successive halving's third; most of
  the budget went to climbing, and the model saw few new configurations. With the quota a
  configuration that ranks in the top 1/eta waits (paused, first in line) until the rung has grown
  enough. Median final regret, 10 seeds, 1 slot: Hartmann-6 0.617 -> 0.277, counting ones 0.182
  -> 0.099 (README, "asynchronous against synchronous BOHB"). A resumed search's earlier promotions
  (``warm_start``: a configuration with results at rungs r and r + 1) count against it; the
  configurations that went straight on through a dropped rung do not;
- the end game: once the last of ``num_samples`` configurations has been added, every rung's
  final size is known (every configuration reaches rung 0; rung r gets rung r - 1's promotions),
  so the quota is that of the final size, floor(final / eta), instead of the size so far. A
  configuration in the rung's top 1/eta then goes on at once instead of waiting for the rung to
  grow: with no new configuration left to start, a promotion held back only leaves a slot idle.
  On 8 simulated GPUs (bench/cluster.py) the search had run out of new configurations 6 s before
  its last promotion started, with 4 of 8 GPUs idle waiting for rungs to grow; that drain was most
  of the 11% that "steady utilisation" lacked. The quota stays: lifting it altogether (the first
  version) let ASHA's rule promote past successive halving's share, 60/23/11 evaluations per rung
  instead of 60/20/6 in the README's main job, which then took 137 s instead of 88 s on 2 cores.
  The benchmarks of regret at equal GPU-seconds (bench/simulate.py) end by budget, before their
  sample cap, so the end game does not change them;
- a promoted configuration continues from its checkpoint, as with every other preset;
- when no more configurations will come and nothing runs, paused configurations that can never
  be promoted are stopped, so the search ends (their MLflow runs are closed as ``stopped``);
  before that, if no configuration has reached the max budget, the best paused one of the
  highest rung is promoted (and again, until one reaches it), so that a search always ends with
  an evaluation at the max budget, as a Hyperband search does.

The searcher learns from every rung result as it arrives (not only at the end of a trial); a
result whose status is not "ok" (failed, diverged, infeasible) and a trial that raised are bad
points for the model (loss +inf), as in hpbandster.

Several objectives (issue 15, ``--objectives val_error n_params``): a rung keeps each result's
objective vector and "top 1/eta" means the first 1/eta of the rung by non-dominated rank, then
crowding distance (MO-ASHA, Schmucker et al. 2021; ``AsyncSuccessiveHalving.position``); the
searcher's model gets each configuration's position in that same ranking as its loss
(``KDESearcher.scalarise``; ParEGO scalarisations are the alternative). Promotion still continues
from checkpoints.

Slots: Ray starts as many trials as the resources allow only if Tune has that many trials
pending, and a trial that Tune already queued would take a freed slot before a promotion could.
So :meth:`AsyncSuccessiveHalving.wants_new_trial` gates the searcher: a new configuration is
proposed only while (running + pending) < the trial slots Ray sees and no paused configuration
waits for promotion. This also means configurations are proposed when a slot is free, from the
freshest model.

Adaptive budgets (issue 14, adaptive_budgets.py; ``--adaptive-budgets``): when the scheduler is
given an :class:`~jointsearch.search.adaptive_budgets.AdaptiveBudgets`, every rung result also
feeds it, and at a rung it has dropped (uninformative about the top rung) a configuration is
neither paused nor ranked: it continues straight on to the next rung. It still reports at the
dropped rung, so the evidence keeps coming and the rung can be restored; under the default
``restarts``/``continue`` protocols that costs nothing extra (starting at the next rung would
train the same epochs). Configurations paused at a rung before it was dropped stay paused
(promoting them by that rung's ranking is what dropping stops; they are old proposals, so they
get no free pass either); they become promotable again if the rung is restored.
"""

from __future__ import annotations

import bisect
import math
import time
from typing import Any, Callable, Sequence

import numpy as np

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from jointsearch.dashboards.pareto import Objective, chebyshev, promotion_order

from .adaptive_budgets import AdaptiveBudgets, BudgetDecision
from .kde import KDEProposer
from .objectives import objective_vector
from .settings import MODELS

__all__ = ["AsyncSuccessiveHalving", "KDESearcher", "trial_slots"]


def _finite(value: float | tuple[float, ...]) -> bool:
    """A rung value that can be promoted: a finite error, or an objective vector without inf."""
    return all(math.isfinite(v) for v in value) if isinstance(value, tuple) else math.isfinite(value)


def trial_slots(cpus_per_trial: float, gpus_per_trial: float, max_concurrent: int = 0) -> int:
    """How many trials the Ray runtime can run at once with these per-trial resources (at least 1).

    Read from the cluster's total logical resources each time, so nodes that join later count.
    """
    import ray

    total = ray.cluster_resources()
    slots = []
    if cpus_per_trial > 0:
        slots.append(int(total.get("CPU", 0) // cpus_per_trial + 1e-9))
    if gpus_per_trial > 0:
        slots.append(int(total.get("GPU", 0) // gpus_per_trial + 1e-9))
    n = max(1, min(slots) if slots else 1)
    return min(n, max_concurrent) if max_concurrent else n


class AsyncSuccessiveHalving(FIFOScheduler):
    """Asynchronous successive halving by promotion; see the module docstring for the rules.

    Rungs are indices into the trainable's rung budgets (its results carry ``rung``); the metric
    is minimised. ``num_samples`` is how many trials the search will add in all: once they are
    all added and nothing runs, paused trials that cannot be promoted are stopped.
    """

    def __init__(self, *, n_rungs: int, eta: float, num_samples: int, slots: Callable[[], int],
                 metric: str = "val_error", adaptive: AdaptiveBudgets | None = None,
                 objectives: Sequence[Objective] = ()):
        super().__init__()
        self._metric, self._mode = metric, "min"
        # Issue 15: with two or more objectives a rung holds each result's signed objective vector
        # and ranks them by Pareto rank and crowding (_multi_objective_position).
        self.objectives = tuple(objectives) if len(objectives) > 1 else ()
        self.n_rungs, self.eta, self.num_samples = n_rungs, eta, num_samples
        self._slots = slots
        self._slots_cache: tuple[float, int] = (0.0, 1)
        self.rungs: list[dict[str, float]] = [{} for _ in range(n_rungs)]  # trial id -> value at rung
        self.promoted: list[set[str]] = [set() for _ in range(n_rungs)]  # trial ids not promotable again
        self.promotions: list[int] = [0] * n_rungs  # promotions out of each rung (the quota's count)
        self.at_rung: dict[str, int] = {}  # trial id -> the rung it last reported
        self.added = 0
        self._sorted_cache: dict[int, list[float]] = {}
        self._mo_order: dict[int, dict[str, int]] = {}  # rung -> trial id -> position (several objectives)
        self._trials: list[Trial] = []  # Tune's list of trials (the controller's own, not a copy)
        self.adaptive = adaptive  # issue 14: which low rungs are trusted (None: all, plain bohb)
        self.results_seen = 0  # rung results received (the step of the adaptive-budget metrics)

    # -- state shared with the searcher -------------------------------------------------------

    def __getstate__(self):  # Tune may pickle the scheduler; the controller's trials stay behind
        state = dict(self.__dict__)
        state["_trials"] = []
        if self.adaptive is not None and self.adaptive.listeners:  # callbacks into the tracker stay too
            import copy

            state["adaptive"] = copy.copy(self.adaptive)
            state["adaptive"].listeners = []
        return state

    def slots(self) -> int:
        now = time.monotonic()
        if now - self._slots_cache[0] > 2.0:
            self._slots_cache = (now, self._slots())
        return self._slots_cache[1]

    def promotable(self, trial_id: str, rung: int) -> bool:
        """Whether a trial is in the top 1/eta (finite values) of ``rung``, not promoted yet, and
        the rung's :meth:`quota` is not used up."""
        if rung >= self.n_rungs - 1 or trial_id in self.promoted[rung] or self.rung_dropped(rung):
            return False
        value = self.rungs[rung].get(trial_id)
        if value is None or not _finite(value):
            return False
        k = int(len(self.rungs[rung]) / self.eta + 1e-9)
        # fewer than k rank before it, and the quota has room
        return self.position(rung, trial_id) < k and self.promotions[rung] < self.quota(rung)

    def quota(self, rung: int) -> int:
        """How many of ``rung`` may go on: floor(n / eta) for its n results so far, or, in the end
        game (every configuration added), for the size the rung will reach."""
        n = len(self.rungs[rung])
        if self.added >= self.num_samples:
            n = max(n, self.added if rung == 0 else self.promotions[rung - 1])
        return int(n / self.eta + 1e-9)

    def _promote(self, rung: int, trial_id: str) -> None:
        self.promoted[rung].add(trial_id)
        self.promotions[rung] += 1

    def position(self, rung: int, trial_id: str) -> int:
        """How many results of ``rung`` rank before this trial's: with one objective, those with a
        smaller value; with several, those before it in the multi-objective order."""
        if self.objectives:
            return self._multi_objective_position(rung, trial_id)
        return bisect.bisect_left(self._sorted(rung), self.rungs[rung][trial_id])

    def _multi_objective_position(self, rung: int, trial_id: str) -> int:
        """MO-ASHA's ranking (Schmucker et al. 2021): non-dominated sorting, then crowding distance
        within a front (dashboards/pareto.py ``promotion_order``); cached until the rung changes."""
        if rung not in self._mo_order:
            ids = list(self.rungs[rung])
            order = promotion_order(np.array([self.rungs[rung][t] for t in ids], dtype=float))
            self._mo_order[rung] = {ids[i]: pos for pos, i in enumerate(order)}
        return self._mo_order[rung][trial_id]

    def objective_value(self, result: dict) -> float | tuple[float, ...]:
        """What a result files under at its rung: its metric (+inf when not ok or not finite), or
        with several objectives its signed objective vector (objectives.objective_vector)."""
        if self.objectives:
            return objective_vector(result, self.objectives)
        ok = str(result.get("status", "ok")) == "ok"
        value = float(result.get(self._metric, math.inf))
        return value if ok and math.isfinite(value) else math.inf

    def _sorted(self, rung: int) -> list[float]:
        """The rung's values in order, cached until the rung changes (asked once per paused trial
        at every scheduling step: a rescan would cost O(trials^2) per step)."""
        if rung not in self._sorted_cache:
            self._sorted_cache[rung] = sorted(self.rungs[rung].values())
        return self._sorted_cache[rung]

    def _record(self, rung: int, trial_id: str, value: float | tuple[float, ...]) -> None:
        self.rungs[rung][trial_id] = value
        self._sorted_cache.pop(rung, None)
        self._mo_order.pop(rung, None)

    def _paused_promotable(self) -> list[tuple[int, Trial]]:
        out = []
        for trial in self._trials:
            if trial.status == Trial.PAUSED:
                rung = self.at_rung.get(trial.trial_id)
                if rung is not None and self.promotable(trial.trial_id, rung):
                    out.append((rung, trial))
        out.sort(key=lambda rt: (-rt[0], self.position(rt[0], rt[1].trial_id)))
        return out

    def _busy(self) -> int:
        return sum(1 for t in self._trials if t.status in (Trial.RUNNING, Trial.PENDING))

    def wants_new_trial(self) -> bool:
        """The searcher's gate: a free slot that no promotion is waiting for."""
        if not self._trials:
            return True
        return self._busy() < self.slots() and not self._paused_promotable()

    def warm_start(self, observations: Sequence[tuple[str, int, float]]) -> None:
        """Rung results of an interrupted search: they count in every rung's top 1/eta, and are
        never promoted themselves (their trials were closed as interrupted)."""
        seen: list[set[str]] = [set() for _ in range(self.n_rungs)]
        for trial_id, rung, value in observations:
            if 0 <= rung < self.n_rungs:
                self._record(rung, trial_id, value)
                self.promoted[rung].add(trial_id)
                self._learn_budgets(trial_id, rung, value)
                seen[rung].add(trial_id)
        for rung in range(self.n_rungs - 1):  # the earlier search's promotions use up the quota
            self.promotions[rung] += len(seen[rung] & seen[rung + 1])

    # -- Tune's scheduler interface ----------------------------------------------------------

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        self._trials = tune_controller.get_trials()
        self.added += 1

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        rung = int(result.get("rung", 0))
        ok = str(result.get("status", "ok")) == "ok"
        value = float(result.get(self._metric, math.inf))
        value = value if ok and math.isfinite(value) else math.inf  # the adaptive budgets watch the metric
        self._record(rung, trial.trial_id, self.objective_value(result))
        self.at_rung[trial.trial_id] = rung
        self.results_seen += 1
        self._learn_budgets(trial.trial_id, rung, value)
        if not ok or rung >= self.n_rungs - 1:
            return TrialScheduler.CONTINUE  # the trainable ends by itself
        if self.rung_dropped(rung):  # issue 14: no pause and no ranking at a dropped rung
            self.promoted[rung].add(trial.trial_id)
            return TrialScheduler.CONTINUE
        if self.promotable(trial.trial_id, rung) and not any(r > rung for r, _ in self._paused_promotable()):
            self._promote(rung, trial.trial_id)
            return TrialScheduler.CONTINUE
        return TrialScheduler.PAUSE

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        self._trials = tune_controller.get_trials()
        running = sum(1 for t in self._trials if t.status == Trial.RUNNING)
        pending = [t for t in self._trials if t.status == Trial.PENDING]
        if running + len(pending) < self.slots():
            promotable = self._paused_promotable()
            if promotable:
                rung, trial = promotable[0]
                self._promote(rung, trial.trial_id)
                return trial
        if pending:
            return pending[0]
        if running == 0 and self.added >= self.num_samples:
            # Nothing runs and nothing new will come: the rungs cannot change any more, so a
            # paused trial that is not promotable now never will be. One exception: if no
            # configuration reached the max budget (a small search: 6 configurations at eta 3
            # fill rung 1 with 2), the best one of the highest rung goes on, as Hyperband always
            # evaluates some configurations at the max budget.
            finalist = self._finalist()
            if finalist is not None:
                return finalist
            for trial in [t for t in self._trials if t.status == Trial.PAUSED]:
                tune_controller.stop_trial(trial)
        return None

    def _finalist(self) -> Trial | None:
        if self.rungs[-1]:
            return None
        best: tuple[int, int, Trial] | None = None
        for trial in self._trials:
            rung = self.at_rung.get(trial.trial_id)
            if trial.status != Trial.PAUSED or rung is None or trial.trial_id in self.promoted[rung]:
                continue
            if trial.trial_id not in self.rungs[rung] or not _finite(self.rungs[rung][trial.trial_id]):
                continue
            position = self.position(rung, trial.trial_id)
            if best is None or (-rung, position) < (-best[0], best[1]):
                best = (rung, position, trial)
        if best is None:
            return None
        self._promote(best[0], best[2].trial_id)
        return best[2]

    # -- adaptive budgets (issue 14) ----------------------------------------------------------

    def rung_dropped(self, rung: int) -> bool:
        """Whether the adaptive budgets dropped this rung (never, without them)."""
        return self.adaptive is not None and self.adaptive.is_dropped(rung)

    def dropped_budgets(self) -> list[float]:
        """Budgets of the dropped rungs: the searcher's model does not fit on them."""
        return self.adaptive.dropped_budgets() if self.adaptive is not None else []

    def _learn_budgets(self, trial_id: str, rung: int, value: float) -> None:
        if self.adaptive is not None:
            self.adaptive.observe(trial_id, rung, value, step=self.results_seen)

    def attach_tracker(self, tracker) -> None:
        """Each decision becomes metrics of the search's parent run (step = evaluations
        completed) and a line of its report; the starting minimum budget is logged at step 0."""
        if self.adaptive is None:
            return
        from .adaptive_budgets import METRIC_PREFIX

        def log(decision: BudgetDecision) -> None:
            tracker.budget_decision(decision.metrics(), decision.step, decision.to_json())

        tracker.log_search_metrics({f"{METRIC_PREFIX}effective_min_budget": self.adaptive.effective_min_budget},
                                   self.results_seen)
        self.adaptive.listeners.append(log)

    def bracket_tags(self, trial: Trial) -> dict[str, str]:
        """MLflow's ``bracket``/``band`` for an asynchronous preset: there is one bracket, and every
        configuration enters it at the smallest budget, like Hyperband's most aggressive bracket
        (s = number of halvings ahead = rungs - 1); ``band`` 0 (there is no next Hyperband
        iteration). How far a configuration got is its ``rung`` tag."""
        return {"bracket": str(self.n_rungs - 1), "band": "0"}

    def debug_string(self) -> str:
        return "AsyncSuccessiveHalving: " + ", ".join(f"rung {k}: {len(v)}" for k, v in enumerate(self.rungs))


class KDESearcher(Searcher):
    """Ray Tune searcher around :class:`~jointsearch.search.kde.KDEProposer`.

    ``gate`` (the scheduler's ``wants_new_trial``) says whether a new configuration should start
    now; ``untrusted`` (the scheduler's ``dropped_budgets``) lists budgets whose observations
    must not steer proposals (issue 14; ``pooled``: kde.py's experimental pooled model, off);
    ``rung_budgets`` maps a result's rung to the budget the model files it under. Every
    proposal's origin is kept in ``proposals`` (trial id -> "model" | "random" | "warm_start") for
    MLflow; ``first`` holds configurations to propose before the model's (``--warm-start-top``).
    """

    def __init__(self, space, *, rung_budgets: Sequence[float], seed: int | None = None,
                 gate: Callable[[], bool] | None = None, untrusted: Callable[[], Sequence[float]] | None = None,
                 pooled: bool = False, objectives: Sequence[Objective] = (), mo_loss: str | None = None,
                 model: str = "kde", **kde: Any):
        super().__init__(metric="val_error", mode="min")
        if model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
        if model == "gp":  # --model gp (gp.py): the same observations, a GP's proposals
            from .gp import GPProposer

            self.proposer = GPProposer(space, seed=seed, **kde)
        else:
            self.proposer = KDEProposer(space, seed=seed, **kde)
        self.proposer.pooled = pooled  # issue 14, measured, off in every preset (kde.py)
        # Issue 15, several objectives. Every observation keeps its signed objective vector; before
        # each proposal the model's losses are recomputed from them (:meth:`scalarise`):
        # "pareto_rank" (default): a configuration's position in the promotion ranking of its
        #   budget (non-dominated rank, then crowding; dashboards/pareto.py promotion_order), so the
        #   KDE's good set is the current front and its spread, as in MOTPE (Ozaki et al. 2020);
        # "parego": ParEGO (Knowles 2006), weights drawn uniformly from the simplex per proposal
        #   and the augmented Chebyshev scalarisation. Measured worse on bench/multi_objective.py
        #   (a weight that favours the exact objective makes its good set ignore the other) with
        #   the KDE; the GP's with three or more objectives;
        # "ehvi": no scalar at all: the GP proposer models each of two objectives and maximises
        #   the expected hypervolume improvement (gp.py). The default with --model gp and two
        #   objectives: on bench/multi_objective.py at one budget, 0.994 of the true front's
        #   hypervolume against ParEGO's 0.975 (medians, 10 seeds).
        if mo_loss is None:
            mo_loss = "pareto_rank" if model != "gp" else "ehvi" if len(objectives) == 2 else "parego"
        if mo_loss not in ("pareto_rank", "parego", "ehvi"):
            raise ValueError(f"mo_loss must be pareto_rank, parego or ehvi, got {mo_loss!r}")
        if mo_loss == "ehvi" and (model != "gp" or len(objectives) != 2):
            raise ValueError("mo_loss 'ehvi' needs model 'gp' and two objectives")
        self.mo_loss = mo_loss
        self.objectives = tuple(objectives) if len(objectives) > 1 else ()
        self.vectors: dict[float, list[tuple[float, ...]]] = {}  # budget -> vectors, in the model's order
        self._ranked: dict[float, int] = {}  # budget -> observations when its ranking was last given to the model
        self.rung_budgets = tuple(float(b) for b in rung_budgets)
        self.gate = gate
        self.untrusted = untrusted  # issue 14: budgets the model must not fit on (the scheduler's dropped rungs)
        self.configs: dict[str, dict] = {}
        self.proposals: dict[str, str] = {}
        self.reached: dict[str, int] = {}  # trial id -> last rung reported
        self.first: list[dict] = []  # warm_start.evaluate_first

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    def suggest(self, trial_id: str):
        if self.gate is not None and not self.gate():
            return None
        if self.first:
            config = dict(self.first.pop(0))
            self.configs[trial_id], self.proposals[trial_id] = config, "warm_start"
            return dict(config)
        if self.untrusted is not None:
            self.proposer.untrusted = set(self.untrusted())
        if self.objectives and self.mo_loss == "ehvi":
            self.proposer.objective_vectors = self.vectors
        elif self.objectives:
            self.scalarise()
        proposal = self.proposer.propose()
        self.configs[trial_id] = proposal.config
        self.proposals[trial_id] = proposal.kind
        return dict(proposal.config)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        config = self.configs.get(trial_id)
        if config is None or "rung" not in result:
            return
        rung = int(result["rung"])
        self.reached[trial_id] = rung
        self.observe(config, float(result.get("budget", self.rung_budgets[rung])), result)

    def observe(self, config: dict, budget: float, result: dict) -> None:
        """One result for the model: its val_error (+inf when not ok), or with several objectives
        its objective vector (scalarised afresh at each proposal)."""
        if self.objectives:
            vector = objective_vector(result, self.objectives)
            self.proposer.observe(config, budget, 0.0 if all(map(math.isfinite, vector)) else math.inf)
            self.vectors.setdefault(float(budget), []).append(vector)
            return
        ok = str(result.get("status", "ok")) == "ok"
        self.proposer.observe(config, budget, float(result["val_error"]) if ok else math.inf)

    def scalarise(self, weights: Sequence[float] | None = None) -> np.ndarray | None:
        """Relabel every budget's observations with one scalar each for the model (see
        ``mo_loss`` in ``__init__``). ParEGO draws weights uniformly on the simplex unless given,
        and returns them; the Pareto-rank loss returns None. Failed and infeasible: +inf."""
        if self.mo_loss == "pareto_rank" and weights is None:
            for budget, vectors in self.vectors.items():
                if self._ranked.get(budget) == len(vectors):
                    continue  # deterministic: unchanged since the last proposal
                self._ranked[budget] = len(vectors)
                F = np.array(vectors, dtype=float)
                loss = np.empty(len(F))
                loss[promotion_order(F)] = np.arange(len(F), dtype=float)
                loss[~np.all(np.isfinite(F), axis=1)] = math.inf
                self.proposer.relabel(budget, loss)
            return None
        if weights is None:
            weights = self.proposer.rng.dirichlet(np.ones(len(self.objectives)))
        weights = np.asarray(weights, dtype=float)
        self._ranked.clear()
        for budget, vectors in self.vectors.items():
            self.proposer.relabel(budget, chebyshev(np.array(vectors, dtype=float), weights))
        return weights

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        config = self.configs.get(trial_id)
        if error and config is not None:  # it raised on its way to the next rung: a bad point there
            rung = min(self.reached.get(trial_id, -1) + 1, len(self.rung_budgets) - 1)
            self.observe(config, self.rung_budgets[rung], {"status": "failed", "val_error": math.inf})

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: a resumed search warm-starts from MLflow (see api.run_search)."""

    def restore(self, checkpoint_path: str) -> None:
        pass

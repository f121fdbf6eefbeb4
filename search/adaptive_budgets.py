"""Budgets that learn from the rank correlation they measure (issue 14): which low rungs to trust.

The paper's central finding is that short runs can mislead (its Spearman rho between the 400 s
and 3 h budgets was 0.05). A search that measures this can act on it. :class:`AdaptiveBudgets`
is fed every rung result of the asynchronous ``bohb`` preset (trial id, rung, value) and decides,
with hysteresis, which of the LOWEST rungs are uninformative about the highest one:

- **Estimate.** For a rung ``k`` it compares the rung with the highest rung ``T > k`` that has at
  least :data:`MIN_PAIRS` configurations evaluated OK at both (matched pairs only): Spearman's
  rho and a two-sided :data:`CONFIDENCE` interval from Fisher's z with the Fieller, Hartley and
  Pearson (1957) standard error for Spearman's rho, ``sqrt(1.06 / (n - 3))``. Why not the
  dashboards' percentile bootstrap: at the 8-20 pairs a decision is made on, a percentile
  bootstrap is too narrow (resamples repeat the same few points) and random; Fisher's interval
  is calibrated at small n, deterministic (a decision is reproducible from the data) and costs
  microseconds, so it is recomputed at every result.
- **Drop.** The lowest rung still in use, ``m``, is dropped when its interval's upper bound is
  below :data:`DROP_BELOW`: the data say, at the interval's level, that its ranking agrees with
  the top rung's less than that. The effective minimum budget rises by one rung.
- **Restore.** The highest dropped rung, ``m - 1``, is restored when its interval's lower bound
  is above :data:`RESTORE_ABOVE`. The two thresholds are symmetric around 0.5 with a gap of
  0.2, and each is compared with the far side of an interval, so a rung whose estimate wanders
  around one threshold changes state at most once: moving back needs the WHOLE interval to
  cross to the other side of the other threshold (hysteresis).
- Only the lowest contiguous rungs are dropped (one rung at a time, from the bottom); the
  highest rung never is. Before
  a rung has :data:`MIN_PAIRS` pairs with a higher rung nothing is decided, so a search behaves
  exactly like plain ``bohb``.

How the thresholds were chosen (bench/simulate.py, README "Adaptive budgets"): on problems
whose lowest budget is uninformative (rho about 0 or negative against the top) the lowest rung
is dropped after a few dozen evaluations; on counting ones and Hartmann-6, whose low budgets
agree with the top, rung pairs measured on promoted configurations (a range-restricted sample)
still show rho well above 0.4, and no rung was dropped in 10 seeds.

Pure Python + scipy: no Ray, no torch, no MLflow (``read_decisions`` imports MLflow lazily).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

__all__ = ["AdaptiveBudgets", "BudgetDecision", "CONFIDENCE", "DROP_BELOW", "MIN_PAIRS", "RESTORE_ABOVE",
           "rank_agreement", "read_decisions"]

#: Matched pairs a rung needs with a higher rung before any decision about it.
MIN_PAIRS = 8
#: Two-sided level of the interval the decisions read.
CONFIDENCE = 0.8
#: A rung is dropped when the upper bound of its interval is below this...
DROP_BELOW = 0.4
#: ...and restored when the lower bound of its interval is above this.
RESTORE_ABOVE = 0.6

METRIC_PREFIX = "adaptive_budgets/"


def rank_agreement(x: Sequence[float], y: Sequence[float], confidence: float = CONFIDENCE
                   ) -> tuple[float, float, float] | None:
    """Spearman's rho of ``x`` and ``y`` with its Fisher-z interval; None when undefined
    (fewer than 4 pairs, or one side constant)."""
    from scipy import stats

    n = len(x)
    if n < 4 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    rho = float(stats.spearmanr(x, y)[0])
    if not math.isfinite(rho):
        return None
    z = math.atanh(max(-0.999999, min(0.999999, rho)))
    half = float(stats.norm.ppf(0.5 + confidence / 2)) * math.sqrt(1.06 / (n - 3))
    return rho, math.tanh(z - half), math.tanh(z + half)


@dataclass(frozen=True)
class BudgetDecision:
    """One change of the rungs in use, with the evidence that caused it."""

    step: int  # evaluations completed when it was made
    action: str  # "drop" | "restore"
    rung: int
    budget: float
    top_rung: int  # the rung it was compared with
    top_budget: float
    spearman: float
    ci_low: float
    ci_high: float
    n_pairs: int
    effective_min_budget: float  # after the decision
    previous_min_budget: float
    confidence: float = CONFIDENCE
    threshold: float = DROP_BELOW

    def metrics(self) -> dict[str, float]:
        """The MLflow metrics of the parent run (step = ``step``)."""
        p, k = METRIC_PREFIX, self.rung
        return {f"{p}effective_min_budget": self.effective_min_budget,
                f"{p}rung_{k}_dropped": 1.0 if self.action == "drop" else 0.0,
                f"{p}rung_{k}_spearman": self.spearman, f"{p}rung_{k}_ci_low": self.ci_low,
                f"{p}rung_{k}_ci_high": self.ci_high, f"{p}rung_{k}_n_pairs": float(self.n_pairs),
                f"{p}rung_{k}_top_budget": self.top_budget, f"{p}rung_{k}_budget": self.budget}

    def line(self) -> str:
        """What the report says about it."""
        verb = "dropped" if self.action == "drop" else "restored"
        bound, cmp = ("upper", "<") if self.action == "drop" else ("lower", ">")
        edge = self.ci_high if self.action == "drop" else self.ci_low
        return (f"after {self.step} evaluations: budget {self.budget:g} {verb}; Spearman rho with budget "
                f"{self.top_budget:g} = {self.spearman:.2f}, {self.confidence:.0%} CI [{self.ci_low:.2f}, "
                f"{self.ci_high:.2f}] on {self.n_pairs} configurations ({bound} bound {edge:.2f} {cmp} "
                f"{self.threshold:g}); effective minimum budget {self.previous_min_budget:g} -> "
                f"{self.effective_min_budget:g}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class AdaptiveBudgets:
    """The decision rule of the module docstring, fed one rung result at a time.

    ``budgets`` are the rung budgets (ascending). ``listeners`` are called with each
    :class:`BudgetDecision` as it is made (the tracker's metrics, the searcher's trusted budgets).
    """

    def __init__(self, budgets: Sequence[float], *, min_pairs: int = MIN_PAIRS, drop_below: float = DROP_BELOW,
                 restore_above: float = RESTORE_ABOVE, confidence: float = CONFIDENCE):
        if not drop_below < restore_above:
            raise ValueError(f"drop_below ({drop_below}) must be below restore_above ({restore_above})")
        self.budgets = tuple(float(b) for b in budgets)
        self.min_pairs = max(4, int(min_pairs))
        self.drop_below, self.restore_above, self.confidence = drop_below, restore_above, confidence
        self.values: list[dict[str, float]] = [{} for _ in self.budgets]  # rung -> trial id -> finite value
        self.n_dropped = 0  # rungs 0 .. n_dropped - 1 are dropped
        self.decisions: list[BudgetDecision] = []
        self.listeners: list[Callable[[BudgetDecision], None]] = []
        self.steps = 0

    # -- state ------------------------------------------------------------------------------
    def is_dropped(self, rung: int) -> bool:
        return 0 <= rung < self.n_dropped

    @property
    def effective_min_budget(self) -> float:
        return self.budgets[self.n_dropped]

    def dropped_budgets(self) -> list[float]:
        return list(self.budgets[:self.n_dropped])

    # -- evidence ---------------------------------------------------------------------------
    def agreement(self, rung: int) -> tuple[int, int, float, float, float] | None:
        """(top rung, pairs, rho, ci low, ci high) of ``rung`` against the highest rung above it
        with at least ``min_pairs`` matched pairs; None when there is none (or rho is undefined)."""
        low = self.values[rung]
        for top in range(len(self.budgets) - 1, rung, -1):
            common = sorted(set(low) & set(self.values[top]))
            if len(common) < self.min_pairs:
                continue
            est = rank_agreement([low[t] for t in common], [self.values[top][t] for t in common], self.confidence)
            if est is None:
                return None
            return (top, len(common), *est)
        return None

    # -- feeding ----------------------------------------------------------------------------
    def observe(self, trial_id: str, rung: int, value: float, step: int | None = None) -> BudgetDecision | None:
        """One rung result (a value that is not finite counts as no evidence); returns the
        decision it caused, if any (at most one per result: the rungs move one at a time)."""
        self.steps = self.steps + 1 if step is None else step
        if not 0 <= rung < len(self.budgets):
            return None
        if value is not None and math.isfinite(value):
            self.values[rung][trial_id] = float(value)
        return self.decide()

    def decide(self) -> BudgetDecision | None:
        m = self.n_dropped
        if m < len(self.budgets) - 1:  # rung m may be dropped (never the highest)
            est = self.agreement(m)
            if est is not None and est[4] < self.drop_below:
                return self._decide("drop", m, est)
        if m > 0:
            est = self.agreement(m - 1)
            if est is not None and est[3] > self.restore_above:
                return self._decide("restore", m - 1, est)
        return None

    def _decide(self, action: str, rung: int, est) -> BudgetDecision:
        top, n, rho, lo, hi = est
        before = self.effective_min_budget
        self.n_dropped += 1 if action == "drop" else -1
        decision = BudgetDecision(step=self.steps, action=action, rung=rung, budget=self.budgets[rung], top_rung=top,
                                  top_budget=self.budgets[top], spearman=rho, ci_low=lo, ci_high=hi, n_pairs=n,
                                  effective_min_budget=self.effective_min_budget, previous_min_budget=before,
                                  confidence=self.confidence,
                                  threshold=self.drop_below if action == "drop" else self.restore_above)
        self.decisions.append(decision)
        for listener in self.listeners:
            listener(decision)
        return decision


def decisions_from_history(history: Mapping[str, Iterable[tuple[int, float]]]) -> list[dict[str, Any]]:
    """Rebuild the decisions from the parent run's metric histories (``{key: [(step, value)]}``):
    each ``rung_<k>_dropped`` point is one decision, its evidence the same-step points of the
    rung's other metrics. Returned as dicts with :class:`BudgetDecision`'s fields, in step order."""
    p = METRIC_PREFIX
    at: dict[str, dict[int, float]] = {k: dict(v) for k, v in history.items()}
    out = []
    for key, points in at.items():
        if not (key.startswith(p + "rung_") and key.endswith("_dropped")):
            continue
        rung = int(key[len(p + "rung_"):-len("_dropped")])
        for step, dropped in sorted(points.items()):
            def get(name: str, default: float = math.nan) -> float:
                return at.get(f"{p}rung_{rung}_{name}", {}).get(step, default)

            out.append({"step": step, "action": "drop" if dropped >= 0.5 else "restore", "rung": rung,
                        "budget": get("budget"), "top_budget": get("top_budget"), "spearman": get("spearman"),
                        "ci_low": get("ci_low"), "ci_high": get("ci_high"), "n_pairs": int(get("n_pairs", 0)),
                        "effective_min_budget": at.get(f"{p}effective_min_budget", {}).get(step, math.nan)})
    out.sort(key=lambda d: (d["step"], d["action"] == "drop"))
    return out


def read_decisions(client, run_id: str) -> list[dict[str, Any]]:
    """The adaptive-budget decisions logged on a search's parent run (see :func:`decisions_from_history`)."""
    run = client.get_run(run_id)
    keys = [k for k in run.data.metrics if k.startswith(METRIC_PREFIX)]
    history = {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)] for k in keys}
    return decisions_from_history(history)

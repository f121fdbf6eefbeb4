"""Pure analyses of a search's evaluation records; figures are drawn from these in ``figures.py``.

Compute first, draw second (as Optuna's ``visualization`` modules do): every function here takes a
sequence of :class:`~jointsearch.dashboards.records.EvaluationRecord` and returns a frozen
``...Info`` record of plain values; tests assert on those records, ``figures.py`` draws them and
``report.py`` lays them out. Nothing here imports torch, Ray or MLflow; Optuna is imported lazily
inside :func:`importance` only.

Conventions shared by all functions:

* An evaluation counts as successful ("ok") when its status is ``"ok"`` and its ``val_error`` is
  finite (:func:`~jointsearch.dashboards.records.is_ok`).
* Where a trial has several ok records at the same budget (a re-run, a resumed bracket), the last
  one in the order given is used.
* A quantity that cannot be estimated is ``None`` (with a ``reason``), never a number.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats

from jointsearch.spaces.io import optuna_distribution, to_python

from .records import EvaluationRecord, is_ok, spent

__all__ = [
    "BracketSpend",
    "BudgetInfo",
    "BudgetPairCorrelation",
    "ImportanceInfo",
    "Imputation",
    "IncumbentInfo",
    "Marginal",
    "PairedErrors",
    "ParamsInfo",
    "RankCorrelationInfo",
    "RungSpend",
    "best_configuration",
    "budget_spent",
    "error_vs_params",
    "importance",
    "importance_per_budget",
    "incumbent_trajectory",
    "ok_budgets",
    "paired_errors",
    "rank_correlation",
]


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def ok_budgets(records: Sequence[EvaluationRecord]) -> list[float]:
    """Sorted distinct budgets at which at least one evaluation succeeded."""
    return sorted({r.budget for r in records if is_ok(r)})


def _last_ok_by_budget(
    records: Sequence[EvaluationRecord],
) -> dict[float, dict[str, EvaluationRecord]]:
    """budget -> trial_id -> the last ok record of that trial at that budget."""
    out: dict[float, dict[str, EvaluationRecord]] = defaultdict(dict)
    for r in records:
        if is_ok(r):
            out[r.budget][r.trial_id] = r
    return dict(out)


def _opt(x: float | None) -> float | None:
    """A finite float, or None (NaN never leaks into a record as if it were an estimate)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------------------------
# Rank correlation across budgets (Zela et al. 2018, table of Spearman rho between budgets)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedErrors:
    """Validation errors of the configurations evaluated OK at both of two budgets."""

    budget_low: float
    budget_high: float
    trial_ids: tuple[str, ...]  # sorted, so resampling is reproducible
    errors_low: tuple[float, ...]  # val_error at budget_low, aligned with trial_ids
    errors_high: tuple[float, ...]  # val_error at budget_high, aligned with trial_ids

    @property
    def n_pairs(self) -> int:
        return len(self.trial_ids)


def paired_errors(
    records: Sequence[EvaluationRecord],
    pairs: Sequence[tuple[float, float]] | None = None,
) -> tuple[PairedErrors, ...]:
    """Errors of the common configurations for each budget pair (default: adjacent budgets).

    ``pairs`` lists ``(b_low, b_high)`` budget pairs; by default every adjacent pair of
    :func:`ok_budgets` (the pairs the scatter grid shows). Budgets without ok records give an
    empty :class:`PairedErrors`.
    """
    by_budget = _last_ok_by_budget(records)
    if pairs is None:
        budgets = ok_budgets(records)
        pairs = list(zip(budgets[:-1], budgets[1:]))
    out = []
    for b_lo, b_hi in pairs:
        lo = by_budget.get(float(b_lo), {})
        hi = by_budget.get(float(b_hi), {})
        common = sorted(set(lo) & set(hi))
        out.append(
            PairedErrors(
                budget_low=float(b_lo),
                budget_high=float(b_hi),
                trial_ids=tuple(common),
                errors_low=tuple(lo[t].val_error for t in common),
                errors_high=tuple(hi[t].val_error for t in common),
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class BudgetPairCorrelation:
    """Rank agreement of validation errors between two budgets (``budget_low < budget_high``).

    When ``sufficient`` is False (fewer than ``min_pairs`` common configurations, or constant
    errors at one budget) every estimate is ``None`` and ``reason`` says why.
    """

    budget_low: float
    budget_high: float
    n_pairs: int  # configurations evaluated OK at both budgets
    sufficient: bool
    spearman: float | None = None  # Spearman rho
    spearman_p: float | None = None  # two-sided p-value of rho = 0
    kendall: float | None = None  # Kendall tau-b
    kendall_p: float | None = None
    ci_low: float | None = None  # percentile bootstrap CI of Spearman rho
    ci_high: float | None = None
    reason: str | None = None  # why the pair is insufficient

    def to_json(self) -> dict[str, Any]:
        return {
            "budget_low": self.budget_low,
            "budget_high": self.budget_high,
            "n_pairs": self.n_pairs,
            "sufficient": self.sufficient,
            "spearman": self.spearman,
            "spearman_p": self.spearman_p,
            "kendall": self.kendall,
            "kendall_p": self.kendall_p,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "reason": self.reason,
        }


_CSV_FIELDS = (
    "budget_low",
    "budget_high",
    "n_pairs",
    "sufficient",
    "spearman",
    "spearman_p",
    "kendall",
    "kendall_p",
    "ci_low",
    "ci_high",
    "reason",
)


@dataclass(frozen=True)
class RankCorrelationInfo:
    """Rank correlation of validation errors for every pair of budgets.

    ``pairs`` holds one :class:`BudgetPairCorrelation` per ``budgets[i] < budgets[j]``, in
    row-major order of the upper triangle.
    """

    budgets: tuple[float, ...]
    pairs: tuple[BudgetPairCorrelation, ...]
    min_pairs: int
    confidence: float
    n_bootstrap: int
    seed: int

    def pair(self, budget_low: float, budget_high: float) -> BudgetPairCorrelation:
        """The entry for one pair of budgets; KeyError when that pair was not computed."""
        for p in self.pairs:
            if p.budget_low == budget_low and p.budget_high == budget_high:
                return p
        raise KeyError(f"no rank correlation for budgets ({budget_low}, {budget_high})")

    def matrix(
        self,
        kind: Literal["spearman", "kendall", "n_pairs", "ci_low", "ci_high"] = "spearman",
    ) -> tuple[tuple[float, ...], list[list[float | int | None]]]:
        """``(budgets, m)`` with ``m[i][j]`` the value for ``budgets[i]`` vs ``budgets[j]``.

        ``m`` is square (``len(budgets)`` x ``len(budgets)``); only the upper triangle
        (``i < j``) is filled, everything else is ``None``, as are insufficient pairs. The paper's
        table (rows = smaller budget, columns = larger) is ``[row[1:] for row in m[:-1]]``.
        """
        if kind not in ("spearman", "kendall", "n_pairs", "ci_low", "ci_high"):
            raise ValueError(
                f"unknown matrix kind {kind!r}; use spearman, kendall, n_pairs, ci_low or ci_high"
            )
        index = {b: i for i, b in enumerate(self.budgets)}
        n = len(self.budgets)
        m: list[list[float | int | None]] = [[None] * n for _ in range(n)]
        for p in self.pairs:
            m[index[p.budget_low]][index[p.budget_high]] = getattr(p, kind)
        return self.budgets, m

    def to_json(self) -> dict[str, Any]:
        return {
            "budgets": list(self.budgets),
            "min_pairs": self.min_pairs,
            "confidence": self.confidence,
            "n_bootstrap": self.n_bootstrap,
            "seed": self.seed,
            "pairs": [p.to_json() for p in self.pairs],
        }

    def to_csv(self) -> str:
        """One line per budget pair; ``None`` is written as an empty cell."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(_CSV_FIELDS)
        for p in self.pairs:
            d = p.to_json()
            writer.writerow(["" if d[k] is None else d[k] for k in _CSV_FIELDS])
        return buf.getvalue()


def _bootstrap_spearman_ci(
    x: np.ndarray, y: np.ndarray, n_bootstrap: int, confidence: float, rng: np.random.Generator
) -> tuple[float | None, float | None]:
    """Percentile bootstrap CI of Spearman rho, resampling (x, y) pairs with replacement.

    Resamples in which either side is constant have no rho and are left out; if none remain
    the CI is (None, None).
    """
    n = len(x)
    if n_bootstrap <= 0:
        return None, None
    idx = rng.integers(0, n, size=(n_bootstrap, n))
    rx = stats.rankdata(x[idx], axis=1)
    ry = stats.rankdata(y[idx], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denom = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    num = (rx * ry).sum(axis=1)
    valid = denom > 0
    if not valid.any():
        return None, None
    rho = np.clip(num[valid] / denom[valid], -1.0, 1.0)
    alpha = 1.0 - confidence
    lo, hi = np.percentile(rho, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def _correlate(
    pe: PairedErrors, *, min_pairs: int, n_bootstrap: int, confidence: float, rng: np.random.Generator
) -> BudgetPairCorrelation:
    base = dict(budget_low=pe.budget_low, budget_high=pe.budget_high, n_pairs=pe.n_pairs)
    if pe.n_pairs < min_pairs:
        return BudgetPairCorrelation(
            **base,
            sufficient=False,
            reason=f"only {pe.n_pairs} configuration(s) at both budgets (need {min_pairs})",
        )
    x = np.asarray(pe.errors_low, dtype=float)
    y = np.asarray(pe.errors_high, dtype=float)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return BudgetPairCorrelation(
            **base,
            sufficient=False,
            reason="validation error is constant at one of the budgets",
        )
    rho, rho_p = stats.spearmanr(x, y)
    tau, tau_p = stats.kendalltau(x, y)
    ci_low, ci_high = _bootstrap_spearman_ci(x, y, n_bootstrap, confidence, rng)
    return BudgetPairCorrelation(
        **base,
        sufficient=True,
        spearman=_opt(rho),
        spearman_p=_opt(rho_p),
        kendall=_opt(tau),
        kendall_p=_opt(tau_p),
        ci_low=ci_low,
        ci_high=ci_high,
    )


def rank_correlation(
    records: Sequence[EvaluationRecord],
    *,
    min_pairs: int = 5,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> RankCorrelationInfo:
    """Spearman rho and Kendall tau of validation errors between every pair of budgets.

    Budgets are the sorted distinct budgets of ok records. For each ``b_i < b_j`` the
    configurations (by ``trial_id``) evaluated OK at both are paired; a pair with fewer than
    ``min_pairs`` of them, or with constant errors at one budget, is reported with
    ``sufficient=False`` and all estimates ``None``. The CI is a percentile bootstrap of Spearman
    rho over resampled configurations (``n_bootstrap`` resamples at level ``confidence``); each
    budget pair draws from its own generator seeded with ``(seed, i, j)``, so a pair's CI does not
    change when other budgets are added.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    budgets = ok_budgets(records)
    all_pairs = [(budgets[i], budgets[j]) for i in range(len(budgets)) for j in range(i + 1, len(budgets))]
    paired = paired_errors(records, all_pairs)
    index = {b: i for i, b in enumerate(budgets)}
    out = []
    for pe in paired:
        rng = np.random.default_rng([seed, index[pe.budget_low], index[pe.budget_high]])
        out.append(
            _correlate(
                pe, min_pairs=min_pairs, n_bootstrap=n_bootstrap, confidence=confidence, rng=rng
            )
        )
    return RankCorrelationInfo(
        budgets=tuple(budgets),
        pairs=tuple(out),
        min_pairs=min_pairs,
        confidence=confidence,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )


# --------------------------------------------------------------------------------------------
# Hyperparameter importance (fANOVA through Optuna)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Imputation:
    """A parameter that was inactive in some records and filled in before fANOVA."""

    name: str
    value: Any  # the value written into records where the parameter was inactive
    n_imputed: int  # how many records got it
    source: str  # "space default" or "observed median" / "observed mode"


@dataclass(frozen=True)
class Marginal:
    """Mean observed validation error along one parameter (binned; see :func:`importance`)."""

    name: str
    kind: Literal["numeric", "categorical"]
    log: bool  # bins are log-spaced (the parameter is on a log scale)
    grid: tuple[Any, ...]  # bin centres (numeric) or choices (categorical), non-empty bins only
    mean_error: tuple[float, ...]  # mean val_error of the records in each bin
    n: tuple[int, ...]  # records per bin
    n_inactive: int = 0  # records where the parameter was inactive (left out here)


@dataclass(frozen=True)
class ImportanceInfo:
    """fANOVA importance of each hyperparameter at one budget.

    ``importances`` maps name -> share of the explained variance, sorted from most to least
    important and summing to 1 when ``sufficient``; it is empty otherwise and ``reason`` says
    why.
    """

    budget: float | None
    n_records: int
    sufficient: bool
    importances: Mapping[str, float] = field(default_factory=dict)
    imputed: tuple[Imputation, ...] = ()
    skipped: Mapping[str, str] = field(default_factory=dict)  # name -> why it was left out
    marginals: tuple[Marginal, ...] = ()
    reason: str | None = None
    method: str = "fANOVA (optuna.importance.FanovaImportanceEvaluator)"
    seed: int = 0
    n_trees: int = 64

    @property
    def imputed_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.imputed)

    def to_json(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "n_records": self.n_records,
            "sufficient": self.sufficient,
            "importances": dict(self.importances),
            "imputed": [
                {"name": i.name, "value": to_python(i.value), "n_imputed": i.n_imputed, "source": i.source}
                for i in self.imputed
            ],
            "skipped": dict(self.skipped),
            "marginals": [
                {
                    "name": m.name,
                    "kind": m.kind,
                    "log": m.log,
                    "grid": [to_python(g) for g in m.grid],
                    "mean_error": list(m.mean_error),
                    "n": list(m.n),
                    "n_inactive": m.n_inactive,
                }
                for m in self.marginals
            ],
            "reason": self.reason,
            "method": self.method,
            "seed": self.seed,
            "n_trees": self.n_trees,
        }


def _typed_default(hp: Any, dist: Any) -> Any:
    """The hyperparameter's default as the distribution's type (used to impute inactive values)."""
    from optuna.distributions import FloatDistribution, IntDistribution

    if isinstance(dist, FloatDistribution):
        return float(hp.default_value)
    if isinstance(dist, IntDistribution):
        return int(hp.default_value)
    return to_python(hp.default_value)


def _distributions_from_space(space: Any, names_seen: set[str]) -> tuple[dict, dict, dict]:
    """(distributions, defaults, skipped) for the hyperparameters of a ConfigSpace space."""
    from ConfigSpace.hyperparameters import Constant

    dists: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for hp in space.values():
        name = hp.name
        if isinstance(hp, Constant):
            skipped[name] = "constant"
            continue
        if name not in names_seen:
            skipped[name] = "inactive in every record at this budget"
            continue
        dist = optuna_distribution(hp)
        if dist is None:
            skipped[name] = f"unsupported hyperparameter type {type(hp).__name__}"
            continue
        dists[name] = dist
        defaults[name] = _typed_default(hp, dist)
    for name in sorted(names_seen - set(space.keys())):
        skipped[name] = "not in the configuration space"
    return dists, defaults, skipped


def _distributions_from_values(
    configs: Sequence[Mapping[str, Any]],
) -> tuple[dict, dict, dict, dict]:
    """Infer (distributions, fill values, fill sources, skipped) from the observed values.

    Parameters with one observed value are left out ("constant"). bool/str values ->
    categorical (fill: most frequent value); int -> IntDistribution over the observed range; other numbers -> FloatDistribution over the observed range, log-scaled when
    all values are positive and span at least two decades (fill: median, rounded for ints).
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    values: dict[str, list[Any]] = defaultdict(list)
    for c in configs:
        for k, v in c.items():
            values[k].append(to_python(v))
    dists, fills, sources, skipped = {}, {}, {}, {}
    for name, vs in sorted(values.items()):
        if len(set(map(repr, vs))) == 1:
            skipped[name] = "constant"
            continue
        if any(isinstance(v, (bool, str)) or v is None for v in vs) or not all(
            isinstance(v, (int, float)) for v in vs
        ):
            if not all(isinstance(v, (bool, str, int, float)) or v is None for v in vs):
                skipped[name] = "values are neither numbers nor strings"
                continue
            counts = Counter(vs)
            choices = sorted(counts, key=lambda v: (type(v).__name__, str(v)))
            dists[name] = CategoricalDistribution(choices)
            fills[name] = max(choices, key=lambda v: counts[v])
            sources[name] = "observed mode"
        elif all(isinstance(v, int) for v in vs):
            lo, hi = min(vs), max(vs)
            dists[name] = IntDistribution(lo, hi, log=lo > 0 and hi >= 100 * lo)
            fills[name] = int(round(float(np.median(vs))))
            sources[name] = "observed median"
        else:
            fv = [float(v) for v in vs]
            if not all(math.isfinite(v) for v in fv):
                skipped[name] = "non-finite values"
                continue
            lo, hi = min(fv), max(fv)
            dists[name] = FloatDistribution(lo, hi, log=lo > 0 and hi >= 100 * lo)
            fills[name] = float(np.median(fv))
            sources[name] = "observed median"
    return dists, fills, sources, skipped


def _coerce(value: Any, dist: Any) -> Any:
    from optuna.distributions import FloatDistribution, IntDistribution

    value = to_python(value)
    if isinstance(dist, IntDistribution) and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(dist, FloatDistribution) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _marginal(
    name: str,
    dist: Any,
    observed: list[tuple[Any, float]],
    n_inactive: int,
    n_bins: int,
) -> Marginal:
    """Bin the observed (active) values of one parameter and average val_error per bin."""
    from optuna.distributions import CategoricalDistribution

    if isinstance(dist, CategoricalDistribution):
        grid, means, ns = [], [], []
        for choice in dist.choices:
            errs = [e for v, e in observed if v == choice]
            if errs:
                grid.append(choice)
                means.append(float(np.mean(errs)))
                ns.append(len(errs))
        return Marginal(name, "categorical", False, tuple(grid), tuple(means), tuple(ns), n_inactive)

    x = np.array([float(v) for v, _ in observed])
    y = np.array([e for _, e in observed])
    log = bool(getattr(dist, "log", False)) and bool((x > 0).all())
    distinct = np.unique(x)
    if len(distinct) <= n_bins:
        # Few distinct values (small integer ranges): one point per value, no binning needed.
        grid = [float(v) for v in distinct]
        means = [float(y[x == v].mean()) for v in distinct]
        ns = [int((x == v).sum()) for v in distinct]
        return Marginal(name, "numeric", log, tuple(grid), tuple(means), tuple(ns), n_inactive)
    t = np.log(x) if log else x
    edges = np.linspace(t.min(), t.max(), n_bins + 1)
    which = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, n_bins - 1)
    grid, means, ns = [], [], []
    for b in range(n_bins):
        mask = which == b
        if mask.any():
            centre = (edges[b] + edges[b + 1]) / 2
            grid.append(float(np.exp(centre)) if log else float(centre))
            means.append(float(y[mask].mean()))
            ns.append(int(mask.sum()))
    return Marginal(name, "numeric", log, tuple(grid), tuple(means), tuple(ns), n_inactive)


def importance(
    records: Sequence[EvaluationRecord],
    space: Any | None = None,
    *,
    budget: float | None = None,
    seed: int = 0,
    n_trees: int = 64,
    top_k: int = 3,
    min_records: int = 8,
    n_bins: int = 10,
) -> ImportanceInfo:
    """fANOVA hyperparameter importance at one budget, with marginals of the top parameters.

    Budget: ``budget`` if given, else the highest budget with at least ``min_records`` ok
    configurations; with fewer the result is insufficient (``sufficient=False``, ``reason``).

    fANOVA is Optuna's :class:`optuna.importance.FanovaImportanceEvaluator` (a random forest of
    ``n_trees`` trees, seeded with ``seed``) on an in-memory study holding one trial per
    configuration. Distributions come from ``space`` (a ``ConfigSpace.ConfigurationSpace``):
    Float -> FloatDistribution (log kept), Integer -> IntDistribution, Categorical and Ordinal ->
    CategoricalDistribution, Constant -> left out. Without a space they are inferred from the
    observed values (see ``_distributions_from_values``).

    Conditional spaces: Optuna only uses parameters present in every trial, so a parameter that
    is inactive in some records (e.g. ``momentum`` when ``optimizer == "adam"``) is imputed there
    with the hyperparameter's **default value** from ``space`` (or, without a space, the observed
    median / most frequent value). A sentinel outside the range would be clearer to the forest but
    is rejected by Optuna's distributions; the default is inside the range, and the parent
    (``optimizer``) is itself a feature, so the forest can still separate the two groups. The
    imputed parameters, the values used and how many records got them are listed in
    ``ImportanceInfo.imputed``; read their importance with that in mind.

    Marginals: for the ``top_k`` most important parameters, the mean *observed* validation error
    along the parameter, over the records where it was active: numeric values are cut into
    ``n_bins`` equal-width bins (log-spaced for log parameters; one point per value when there
    are at most ``n_bins`` distinct values) and categorical ones are grouped by choice. This is
    an observed average, not the forest's predicted marginal, so it mixes in the effect of the
    other parameters where the search did not sample them independently.
    """
    ok_by_budget = _last_ok_by_budget(records)
    counts = {b: len(v) for b, v in ok_by_budget.items()}
    common = dict(seed=seed, n_trees=n_trees)
    if budget is None:
        enough = [b for b, n in counts.items() if n >= min_records]
        if not enough:
            highest = max(counts) if counts else None
            return ImportanceInfo(
                budget=highest,
                n_records=counts.get(highest, 0) if highest is not None else 0,
                sufficient=False,
                reason=(
                    f"no budget has at least {min_records} successful evaluations"
                    if counts
                    else "no successful evaluations"
                ),
                **common,
            )
        budget = max(enough)
    budget = float(budget)
    at_budget = list(ok_by_budget.get(budget, {}).values())
    if len(at_budget) < min_records:
        return ImportanceInfo(
            budget=budget,
            n_records=len(at_budget),
            sufficient=False,
            reason=f"{len(at_budget)} successful evaluation(s) at budget {budget:g} (need {min_records})",
            **common,
        )

    import optuna
    from optuna.importance import FanovaImportanceEvaluator

    configs = [dict(r.config) for r in at_budget]
    names_seen = {k for c in configs for k in c}
    if space is not None:
        dists, fills, skipped = _distributions_from_space(space, names_seen)
        sources = {name: "space default" for name in dists}
    else:
        dists, fills, sources, skipped = _distributions_from_values(configs)
    if not dists:
        return ImportanceInfo(
            budget=budget,
            n_records=len(at_budget),
            sufficient=False,
            skipped=skipped,
            reason="no hyperparameter with a usable distribution",
            **common,
        )

    n_imputed: Counter[str] = Counter()
    trials = []
    used: list[EvaluationRecord] = []
    n_rejected = 0
    for r, c in zip(at_budget, configs):
        params = {}
        for name, dist in dists.items():
            if name in c:
                params[name] = _coerce(c[name], dist)
            else:
                params[name] = fills[name]
        try:
            trial = optuna.trial.create_trial(
                params=params, distributions=dict(dists), value=float(r.val_error)
            )
        except ValueError:
            n_rejected += 1  # a value outside its distribution (space changed mid-search?)
            continue
        for name in dists:
            if name not in c:
                n_imputed[name] += 1
        trials.append(trial)
        used.append(r)
    if n_rejected:
        skipped = {**skipped, "<records>": f"{n_rejected} record(s) with values outside the space"}
    imputed = tuple(
        Imputation(name, fills[name], n_imputed[name], sources[name])
        for name in dists
        if n_imputed[name] > 0
    )
    if len(trials) < min_records:
        return ImportanceInfo(
            budget=budget,
            n_records=len(trials),
            sufficient=False,
            imputed=imputed,
            skipped=skipped,
            reason=f"{len(trials)} usable evaluation(s) at budget {budget:g} (need {min_records})",
            **common,
        )
    if np.ptp([r.val_error for r in used]) == 0:
        return ImportanceInfo(
            budget=budget,
            n_records=len(trials),
            sufficient=False,
            imputed=imputed,
            skipped=skipped,
            reason="validation error is the same for every configuration",
            **common,
        )

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction="minimize")
        study.add_trials(trials)
        raw = FanovaImportanceEvaluator(n_trees=n_trees, seed=seed).evaluate(study)
    finally:
        optuna.logging.set_verbosity(verbosity)

    total = float(sum(raw.values()))
    if not math.isfinite(total) or total <= 0:
        return ImportanceInfo(
            budget=budget,
            n_records=len(trials),
            sufficient=False,
            imputed=imputed,
            skipped=skipped,
            reason="the forest explains none of the variance",
            **common,
        )
    shares = sorted(((k, float(v) / total) for k, v in raw.items()), key=lambda kv: (-kv[1], kv[0]))
    importances = dict(shares)

    marginals = []
    for name, _ in shares[:top_k]:
        observed = [
            (_coerce(r.config[name], dists[name]), r.val_error) for r in used if name in r.config
        ]
        if observed:
            marginals.append(
                _marginal(name, dists[name], observed, len(used) - len(observed), n_bins)
            )
    return ImportanceInfo(
        budget=budget,
        n_records=len(trials),
        sufficient=True,
        importances=importances,
        imputed=imputed,
        skipped=skipped,
        marginals=tuple(marginals),
        **common,
    )


def importance_per_budget(
    records: Sequence[EvaluationRecord],
    space: Any | None = None,
    *,
    seed: int = 0,
    n_trees: int = 64,
    top_k: int = 3,
    min_records: int = 8,
    n_bins: int = 10,
) -> dict[float, ImportanceInfo]:
    """:func:`importance` at every budget with ok records (ascending); thin budgets come back
    with ``sufficient=False`` rather than being dropped, so a caller can say why."""
    return {
        b: importance(
            records,
            space,
            budget=b,
            seed=seed,
            n_trees=n_trees,
            top_k=top_k,
            min_records=min_records,
            n_bins=n_bins,
        )
        for b in ok_budgets(records)
    }


# --------------------------------------------------------------------------------------------
# Incumbent trajectory
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IncumbentInfo:
    """The best validation error at the search's highest budget, as the search went on.

    One step per evaluation (failed ones too: they spent time and budget) in finish order.
    ``best_error[k]`` is the lowest val_error among ok records at ``budget`` finished up to step
    ``k`` (NaN before the first one), so it is non-increasing once defined.
    """

    budget: float | None  # the highest budget any ok record reached; None without ok records
    trial_ids: tuple[str, ...]
    wall_time_s: tuple[float, ...]  # seconds since the first finish; NaN where unknown
    cumulative_budget: tuple[float, ...]  # budget units spent up to and including this step
    best_error: tuple[float, ...]
    incumbent_trial_id: str | None
    incumbent_config: Mapping[str, Any] | None
    incumbent_error: float | None

    @property
    def has_wall_time(self) -> bool:
        return any(math.isfinite(t) for t in self.wall_time_s)


def _finish_order(records: Sequence[EvaluationRecord]) -> list[EvaluationRecord]:
    """Sorted by finished_at; records without a finish time keep their given order, last."""
    keyed = [
        (0 if math.isfinite(r.finished_at) else 1, r.finished_at if math.isfinite(r.finished_at) else 0.0, i, r)
        for i, r in enumerate(records)
    ]
    return [k[-1] for k in sorted(keyed, key=lambda k: k[:3])]


def incumbent_trajectory(records: Sequence[EvaluationRecord]) -> IncumbentInfo:
    """Best val_error at the highest budget against wall time and cumulative budget spent.

    The highest budget is the highest any ok record reached over the whole run (not the highest
    seen *so far*): errors at lower budgets are not comparable with it, and switching budgets
    mid-way would make the curve jump up. Cumulative budget counts each evaluation's full budget
    (every evaluation, including failed ones), i.e. it assumes no checkpoint resumption.
    """
    ordered = _finish_order(records)
    ok = [r for r in ordered if is_ok(r)]
    top = max((r.budget for r in ok), default=None)
    t0 = next((r.finished_at for r in ordered if math.isfinite(r.finished_at)), float("nan"))
    wall, spent, best, ids = [], [], [], []
    total = 0.0
    current: EvaluationRecord | None = None
    for r in ordered:
        total += r.budget
        if top is not None and is_ok(r) and r.budget == top:
            if current is None or r.val_error < current.val_error:
                current = r
        ids.append(r.trial_id)
        wall.append(r.finished_at - t0)
        spent.append(total)
        best.append(current.val_error if current is not None else float("nan"))
    return IncumbentInfo(
        budget=top,
        trial_ids=tuple(ids),
        wall_time_s=tuple(wall),
        cumulative_budget=tuple(spent),
        best_error=tuple(best),
        incumbent_trial_id=current.trial_id if current else None,
        incumbent_config=dict(current.config) if current else None,
        incumbent_error=current.val_error if current else None,
    )


# --------------------------------------------------------------------------------------------
# Budget spent per rung and per bracket
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RungSpend:
    budget: float
    n_evaluations: int  # all statuses
    n_ok: int
    total_budget: float  # budget trained at this rung (records.spent), summed
    total_cost_s: float  # sum of the known cost_s; NaN when none is known


@dataclass(frozen=True)
class BracketSpend:
    bracket: int
    n_evaluations: int
    n_ok: int
    total_budget: float
    budgets: tuple[float, ...]  # the rungs this bracket evaluated at


@dataclass(frozen=True)
class BudgetInfo:
    """Where the budget went: per rung (budget level) and per Hyperband bracket.

    Failed evaluations are counted: they spent their budget. ``sum(r.total_budget for r in
    rungs) == total_budget``; brackets cover only records with a bracket
    (``n_without_bracket`` says how many had none).
    """

    total_budget: float
    n_evaluations: int
    n_ok: int
    total_cost_s: float
    rungs: tuple[RungSpend, ...]
    brackets: tuple[BracketSpend, ...]
    n_without_bracket: int


def _sum_known(values: list[float]) -> float:
    known = [v for v in values if math.isfinite(v)]
    return float(sum(known)) if known else float("nan")


def budget_spent(records: Sequence[EvaluationRecord]) -> BudgetInfo:
    """Total budget and number of evaluations per budget (rung) and per bracket.

    "Budget" is what each evaluation really trained (:func:`records.spent`): a rung continued
    from a checkpoint pays the difference to the previous rung, a rung trained from scratch (the
    ``scratch`` fidelity protocol) pays all of it; records without a ``budget_spent`` count their
    whole budget.
    """
    by_budget: dict[float, list[EvaluationRecord]] = defaultdict(list)
    by_bracket: dict[int, list[EvaluationRecord]] = defaultdict(list)
    for r in records:
        by_budget[r.budget].append(r)
        if r.bracket is not None:
            by_bracket[r.bracket].append(r)
    rungs = tuple(
        RungSpend(
            budget=b,
            n_evaluations=len(rs),
            n_ok=sum(is_ok(r) for r in rs),
            total_budget=float(sum(spent(r) for r in rs)),
            total_cost_s=_sum_known([r.cost_s for r in rs]),
        )
        for b, rs in sorted(by_budget.items())
    )
    brackets = tuple(
        BracketSpend(
            bracket=k,
            n_evaluations=len(rs),
            n_ok=sum(is_ok(r) for r in rs),
            total_budget=float(sum(spent(r) for r in rs)),
            budgets=tuple(sorted({r.budget for r in rs})),
        )
        for k, rs in sorted(by_bracket.items())
    )
    return BudgetInfo(
        total_budget=float(sum(spent(r) for r in records)),
        n_evaluations=len(records),
        n_ok=sum(is_ok(r) for r in records),
        total_cost_s=_sum_known([r.cost_s for r in records]),
        rungs=rungs,
        brackets=brackets,
        n_without_bracket=sum(r.bracket is None for r in records),
    )


# --------------------------------------------------------------------------------------------
# Error against parameter count, and the best configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamsInfo:
    """(n_params, val_error, budget) of the ok records that know their parameter count."""

    trial_ids: tuple[str, ...]
    n_params: tuple[int, ...]
    val_error: tuple[float, ...]
    budget: tuple[float, ...]
    n_without_params: int  # ok records with n_params None (not shown)


def error_vs_params(records: Sequence[EvaluationRecord]) -> ParamsInfo:
    """Validation error against network size, for the ok records that have ``n_params``."""
    ok = [r for r in records if is_ok(r)]
    have = [r for r in ok if r.n_params is not None]
    return ParamsInfo(
        trial_ids=tuple(r.trial_id for r in have),
        n_params=tuple(int(r.n_params) for r in have),  # type: ignore[arg-type]
        val_error=tuple(r.val_error for r in have),
        budget=tuple(r.budget for r in have),
        n_without_params=len(ok) - len(have),
    )


def best_configuration(records: Sequence[EvaluationRecord]) -> EvaluationRecord | None:
    """The ok record with the lowest val_error at the highest budget any ok record reached.

    Ties go to the earlier record in the order given; None when nothing succeeded.
    """
    ok = [r for r in records if is_ok(r)]
    if not ok:
        return None
    top = max(r.budget for r in ok)
    return min((r for r in ok if r.budget == top), key=lambda r: r.val_error)

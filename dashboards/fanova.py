"""Hyperparameter importance (fANOVA through Optuna's evaluator) per budget, with marginals.

Conditional spaces are handled by imputing inactive hyperparameters with their default, and the
result says which were imputed. Optuna is imported lazily inside :func:`importance` only.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from jointsearch.spaces.io import optuna_distribution, to_python

from .records import EvaluationRecord, last_ok_by_budget, ok_budgets

__all__ = ["ImportanceInfo", "Imputation", "Marginal", "importance", "importance_per_budget"]


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
    common = dict(seed=seed, n_trees=n_trees)
    try:
        return _importance(records, space, budget, common, top_k, min_records, n_bins)
    except _Insufficient as why:
        return ImportanceInfo(sufficient=False, **why.fields, **common)


class _Insufficient(Exception):
    """Raised where importance cannot be estimated; carries the fields of the insufficient result."""

    def __init__(self, **fields: Any) -> None:
        super().__init__(fields.get("reason"))
        self.fields = fields


def _importance(records, space, budget, common, top_k, min_records, n_bins) -> ImportanceInfo:
    ok_by_budget = last_ok_by_budget(records)
    counts = {b: len(v) for b, v in ok_by_budget.items()}
    if budget is None:
        enough = [b for b, n in counts.items() if n >= min_records]
        if not enough:
            highest = max(counts) if counts else None
            raise _Insufficient(budget=highest, n_records=counts.get(highest, 0),
                                reason=f"no budget has at least {min_records} successful evaluations"
                                if counts else "no successful evaluations")
        budget = max(enough)
    budget = float(budget)
    at_budget = list(ok_by_budget.get(budget, {}).values())
    if len(at_budget) < min_records:
        raise _Insufficient(budget=budget, n_records=len(at_budget),
                            reason=f"{len(at_budget)} successful evaluation(s) at budget {budget:g} (need {min_records})")

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
        raise _Insufficient(budget=budget, n_records=len(at_budget), skipped=skipped,
                            reason="no hyperparameter with a usable distribution")

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
        raise _Insufficient(budget=budget, n_records=len(trials), imputed=imputed, skipped=skipped,
                            reason=f"{len(trials)} usable evaluation(s) at budget {budget:g} (need {min_records})")
    if np.ptp([r.val_error for r in used]) == 0:
        raise _Insufficient(budget=budget, n_records=len(trials), imputed=imputed, skipped=skipped,
                            reason="validation error is the same for every configuration")

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction="minimize")
        study.add_trials(trials)
        raw = FanovaImportanceEvaluator(**common).evaluate(study)
    finally:
        optuna.logging.set_verbosity(verbosity)

    total = float(sum(raw.values()))
    if not math.isfinite(total) or total <= 0:
        raise _Insufficient(budget=budget, n_records=len(trials), imputed=imputed, skipped=skipped,
                            reason="the forest explains none of the variance")
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

"""Several objectives at once: their declaration, constraints on metrics, and the Pareto maths.

Pure numpy (no torch, Ray or MLflow), so that both the search (promotion, proposals, constraint
checks, ``export --pick``) and the dashboards (the live front, the report) use one definition.

Conventions: an objective is a metric name and a direction (``min`` by default, ``name:max`` to
maximise). Every function that takes a matrix ``F`` (n points x m objectives) expects it already
*signed* for minimisation (:func:`signed`): smaller is better in every column. Points with a
non-finite entry (a failed or infeasible evaluation) are dominated by every finite point and
never belong to a front.

Compute first, draw second: :func:`pareto_fronts` returns :class:`ParetoInfo` records, which
``figures.pareto_plot`` draws and the report and the live dashboards write as JSON.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .records import EvaluationRecord, is_ok

__all__ = ["Constraint", "Objective", "ParetoInfo", "ParetoPoint", "chebyshev", "crowding_distance",
           "hypervolume", "knee_index", "metric_value", "nondominated_ranks", "pareto_fronts", "parse_constraint",
           "parse_objectives", "promotion_order", "signed", "violations"]

DEFAULT_OBJECTIVES = ("val_error",)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")


# -- objectives and constraints -----------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """One metric to optimise; ``maximize`` flips its sign for every computation here."""

    name: str
    maximize: bool = False

    @property
    def sign(self) -> float:
        return -1.0 if self.maximize else 1.0

    def __str__(self) -> str:
        return f"{self.name}:max" if self.maximize else self.name


def parse_objectives(specs: Sequence[str] | str) -> tuple[Objective, ...]:
    """``["val_error", "n_params", "accuracy:max"]`` -> objectives; ``ValueError`` (one line) on a
    bad name, an unknown direction, a duplicate, or an empty list."""
    if isinstance(specs, str):
        specs = specs.split()
    out: list[Objective] = []
    for spec in specs:
        if not isinstance(spec, str):
            raise ValueError(f"--objectives takes metric names, got {spec!r}")
        name, sep, direction = spec.strip().partition(":")
        if not _NAME.match(name):
            raise ValueError(f"--objectives: {spec!r} is not a metric name (letters, digits, _ . - /; "
                             f"optionally :min or :max)")
        if sep and direction not in ("min", "max"):
            raise ValueError(f"--objectives: {spec!r} has direction {direction!r}; use NAME, NAME:min or NAME:max")
        if any(o.name == name for o in out):
            raise ValueError(f"--objectives names {name!r} twice")
        out.append(Objective(name, direction == "max"))
    if not out:
        raise ValueError("--objectives needs at least one metric name")
    return tuple(out)


_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.\-/]*)\s*(<=|>=|<|>)\s*(\S+)\s*$")


@dataclass(frozen=True)
class Constraint:
    """``metric op bound``: an evaluation satisfies it when ``value op bound`` holds."""

    metric: str
    op: str  # one of <=, <, >=, >
    bound: float

    def satisfied(self, value: float | None) -> bool:
        """A missing or non-finite value does not satisfy a constraint (it cannot be shown to)."""
        if value is None or not math.isfinite(float(value)):
            return False
        return _OPS[self.op](float(value), self.bound)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"


def parse_constraint(text: str) -> Constraint:
    """``"n_params<=5e6"`` -> :class:`Constraint`; ``ValueError`` (one line) otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"--constraint must look like METRIC<=VALUE, got {text!r}")
    m = _CONSTRAINT.match(text)
    if not m:
        raise ValueError(f"--constraint {text!r}: write METRIC OP VALUE with OP one of <=, <, >=, > "
                         f"(e.g. n_params<=5e6)")
    try:
        bound = float(m.group(3))
    except ValueError:
        raise ValueError(f"--constraint {text!r}: {m.group(3)!r} is not a number") from None
    if not math.isfinite(bound):
        raise ValueError(f"--constraint {text!r}: the bound must be finite")
    return Constraint(m.group(1), m.group(2), bound)


def violations(constraints: Sequence[Constraint], metrics: Mapping[str, Any]) -> list[str]:
    """The constraints ``metrics`` breaks, as text (``"latency_ms=12.5 breaks latency_ms<=10"``);
    a metric the result lacks breaks its constraint too (``"latency_ms missing"``)."""
    out = []
    for c in constraints:
        value = metrics.get(c.metric)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            out.append(f"{c.metric} missing, needed by {c}")
        elif not c.satisfied(value):
            out.append(f"{c.metric}={float(value):g} breaks {c}")
    return out


def metric_value(record: EvaluationRecord, name: str) -> float:
    """One metric of a record: its own fields (val_error, cost_s, n_params, budget_spent, budget)
    or the trainer's other numeric metrics (``record.metrics``); NaN when unknown."""
    if name in ("val_error", "cost_s", "budget", "budget_spent", "n_params"):
        value = getattr(record, name)
    else:
        value = record.metrics.get(name)
    return float("nan") if value is None else float(value)


def signed(rows: Sequence[Sequence[float]], objectives: Sequence[Objective]) -> np.ndarray:
    """Raw metric rows -> the minimisation matrix; NaN and missing become +inf (the worst)."""
    F = np.asarray(rows, dtype=float).reshape(len(rows), len(objectives))
    F = F * np.array([o.sign for o in objectives])
    F[~np.isfinite(F)] = np.inf
    return F


# -- non-dominated sorting, crowding, promotion order ------------------------------------------


def _dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a <= b) and np.any(a < b))


def nondominated_ranks(F: np.ndarray) -> np.ndarray:
    """Front index of every row (0 = non-dominated), by Deb et al.'s fast non-dominated sort.

    Rows with a non-finite entry all share the last rank, after every finite row."""
    F = np.asarray(F, dtype=float)
    n = F.shape[0]
    ranks = np.full(n, -1, dtype=int)
    finite = np.all(np.isfinite(F), axis=1) if n else np.zeros(0, bool)
    idx = np.flatnonzero(finite)
    if idx.size:
        G = F[idx]
        le = np.all(G[:, None, :] <= G[None, :, :], axis=2)
        lt = np.any(G[:, None, :] < G[None, :, :], axis=2)
        dom = le & lt  # dom[i, j]: i dominates j
        count = dom.sum(0)
        current = np.flatnonzero(count == 0)
        level = 0
        local = np.full(idx.size, -1, dtype=int)
        while current.size:
            local[current] = level
            count = count - dom[current].sum(0)
            count[local >= 0] = -1
            current = np.flatnonzero(count == 0)
            level += 1
        ranks[idx] = local
    ranks[~finite] = (ranks.max() + 1) if idx.size else 0
    return ranks


def crowding_distance(F: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each row within the set ``F`` (one front): boundary points
    get +inf, others the sum over objectives of the normalised gap between their neighbours."""
    F = np.asarray(F, dtype=float)
    n, m = F.shape
    d = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(F[:, j], kind="stable")
        col = F[order, j]
        span = col[-1] - col[0]
        d[order[0]] = d[order[-1]] = np.inf
        if span > 0 and np.isfinite(span):
            d[order[1:-1]] += (col[2:] - col[:-2]) / span
    return d


def promotion_order(F: np.ndarray) -> np.ndarray:
    """Row indices best first: by non-dominated rank, then by crowding distance within a rank
    (larger first: keep the front spread), then by index (stable). This is the ranking
    multi-objective ASHA (Schmucker et al. 2021) promotes the top 1/eta of."""
    F = np.asarray(F, dtype=float)
    ranks = nondominated_ranks(F)
    crowd = np.zeros(len(F))
    for r in np.unique(ranks):
        members = np.flatnonzero(ranks == r)
        if np.all(np.isfinite(F[members])):
            crowd[members] = crowding_distance(F[members])
    return np.lexsort((np.arange(len(F)), -crowd, ranks))


# -- hypervolume and knee -------------------------------------------------------------------------


def hypervolume(F: np.ndarray, ref: Sequence[float]) -> float:
    """The volume dominated by the rows of ``F`` and bounded by the reference point ``ref``
    (minimisation). Exact: a sweep in 2-D, recursive slicing (HSO) above; rows that do not
    strictly dominate ``ref`` add nothing."""
    F = np.asarray(F, dtype=float).reshape(-1, len(ref))
    ref = np.asarray(ref, dtype=float)
    F = F[np.all(np.isfinite(F), axis=1) & np.all(F < ref, axis=1)]
    if F.size == 0:
        return 0.0
    F = F[nondominated_ranks(F) == 0]
    return float(_hv(F, ref))


def _hv(F: np.ndarray, ref: np.ndarray) -> float:
    m = F.shape[1]
    if m == 1:
        return float(ref[0] - F[:, 0].min())
    if m == 2:
        P = F[np.argsort(F[:, 0], kind="stable")]
        total, best_y = 0.0, ref[1]
        for x, y in P:
            if y < best_y:
                total += (ref[0] - x) * (best_y - y)
                best_y = y
        return total
    P = F[np.argsort(F[:, -1], kind="stable")]
    total = 0.0
    for i in range(len(P)):
        upper = P[i + 1, -1] if i + 1 < len(P) else ref[-1]
        depth = upper - P[i, -1]
        if depth > 0:
            S = P[: i + 1, :-1]
            S = S[nondominated_ranks(S) == 0]
            total += _hv(S, ref[:-1]) * depth
    return total


def knee_index(F: np.ndarray) -> int | None:
    """The knee of a 2-D front: after scaling both objectives to [0, 1] over the front, the point
    farthest from the line through its two extremes (largest "bend"); with one or two points, the
    one closest to the ideal corner. ``F`` holds the front's rows (minimisation); None if empty."""
    F = np.asarray(F, dtype=float)
    if F.size == 0:
        return None
    lo, hi = F.min(0), F.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    G = (F - lo) / span
    if len(G) <= 2 or G.shape[1] != 2:
        return int(np.argmin(np.linalg.norm(G, axis=1)))
    a, b = G[np.argmin(G[:, 0])], G[np.argmin(G[:, 1])]
    line = b - a
    norm = np.linalg.norm(line)
    if norm == 0:
        return int(np.argmin(np.linalg.norm(G, axis=1)))
    dist = np.abs(line[0] * (G[:, 1] - a[1]) - line[1] * (G[:, 0] - a[0])) / norm
    below = (line[0] * (G[:, 1] - a[1]) - line[1] * (G[:, 0] - a[0])) < 0  # on the ideal side of the line
    dist = np.where(below | (dist == 0), dist, -dist)
    return int(np.argmax(dist))


# -- scalarisation (ParEGO) ---------------------------------------------------------------------


def chebyshev(F: np.ndarray, weights: Sequence[float], rho: float = 0.05) -> np.ndarray:
    """ParEGO's augmented Chebyshev scalarisation of each row (Knowles 2006): objectives are
    min-max normalised over the finite rows, then ``max_i w_i f_i + rho * sum_i w_i f_i``.
    Rows with a non-finite entry score +inf (a bad point for the model)."""
    F = np.asarray(F, dtype=float)
    w = np.asarray(weights, dtype=float)
    out = np.full(len(F), np.inf)
    finite = np.all(np.isfinite(F), axis=1)
    if not finite.any():
        return out
    G = F[finite]
    lo, hi = G.min(0), G.max(0)
    G = (G - lo) / np.where(hi > lo, hi - lo, 1.0)
    out[finite] = (G * w).max(1) + rho * (G * w).sum(1)
    return out


# -- the front of a search ------------------------------------------------------------------------


@dataclass(frozen=True)
class ParetoPoint:
    trial_id: str
    values: tuple[float, ...]  # raw metric values, in the objectives' order
    n_params: int | None
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParetoInfo:
    """The front of the ok evaluations at one budget (the last of each trial there)."""

    budget: float
    objectives: tuple[str, ...]  # as given (``name`` or ``name:max``)
    front: tuple[ParetoPoint, ...]  # non-dominated, sorted by the first objective
    dominated: tuple[ParetoPoint, ...]
    knee: int | None  # index into ``front`` (2 objectives only)
    hypervolume: float | None  # against ``reference`` (2 or 3 objectives; None above: exact HV is too slow)
    reference: tuple[float, ...] | None  # raw metric values; worst seen plus 10 % of the range

    def to_json(self) -> dict[str, Any]:
        def points(ps):
            return [{"trial_id": p.trial_id, "values": dict(zip(self.objectives, p.values)),
                     "n_params": p.n_params, "config": dict(p.config)} for p in ps]

        return {"budget": self.budget, "objectives": list(self.objectives), "front": points(self.front),
                "dominated": points(self.dominated), "knee": self.knee, "hypervolume": self.hypervolume,
                "reference": list(self.reference) if self.reference else None}


def pareto_fronts(records: Sequence[EvaluationRecord], objectives: Sequence[Objective | str]
                  ) -> list[ParetoInfo]:
    """One :class:`ParetoInfo` per budget with ok evaluations, ascending by budget. Evaluations
    missing an objective's value are left out (they cannot be placed)."""
    objectives = tuple(o if isinstance(o, Objective) else parse_objectives([o])[0] for o in objectives)
    last: dict[float, dict[str, EvaluationRecord]] = {}
    for r in records:
        if is_ok(r):
            last.setdefault(r.budget, {})[r.trial_id] = r
    out = []
    for budget in sorted(last):
        rs = list(last[budget].values())
        raw = [[metric_value(r, o.name) for o in objectives] for r in rs]
        keep = [i for i, row in enumerate(raw) if all(math.isfinite(v) for v in row)]
        rs, raw = [rs[i] for i in keep], [raw[i] for i in keep]
        if not rs:
            continue
        F = signed(raw, objectives)
        ranks = nondominated_ranks(F)
        pts = [ParetoPoint(r.trial_id, tuple(row), r.n_params, dict(r.config)) for r, row in zip(rs, raw)]
        front_idx = sorted(np.flatnonzero(ranks == 0), key=lambda i: (F[i, 0], F[i, 1:].tolist()))
        front = tuple(pts[i] for i in front_idx)
        dominated = tuple(p for i, p in enumerate(pts) if ranks[i] != 0)
        knee = knee_index(F[front_idx]) if len(objectives) == 2 else None
        hv, ref = None, None
        if 2 <= len(objectives) <= 3:  # exact HSO grows as n^(m-1): beyond 3 objectives it is left out
            worst, best = F.max(0), F.min(0)
            ref_signed = worst + 0.1 * np.where(worst > best, worst - best, np.abs(worst) + 1.0)
            hv = hypervolume(F, ref_signed)
            ref = tuple(float(v) for v in ref_signed * np.array([o.sign for o in objectives]))
        out.append(ParetoInfo(budget, tuple(str(o) for o in objectives), front, dominated, knee, hv, ref))
    return out

"""Rank correlation of validation errors across budgets (Zela et al. 2018, their table of
Spearman rho between budgets), with bootstrap confidence intervals, and the paired errors behind it.

The paper's central finding lives here: short runs can rank configurations differently from long
ones, so how well each budget predicts the next is measured, not assumed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats


from .records import EvaluationRecord, finite_or_none, last_ok_by_budget, ok_budgets

__all__ = ["BudgetPairCorrelation", "PairedErrors", "RankCorrelationInfo", "paired_errors", "rank_correlation"]


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
    by_budget = last_ok_by_budget(records)
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
        spearman=finite_or_none(rho),
        spearman_p=finite_or_none(rho_p),
        kendall=finite_or_none(tau),
        kendall_p=finite_or_none(tau_p),
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

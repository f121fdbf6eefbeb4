"""Pure analyses of a search's evaluation records, one module per analysis; this module gathers them.

Compute first, draw second (as Optuna's ``visualization`` modules do): every function takes a
sequence of :class:`~jointsearch.dashboards.records.EvaluationRecord` and returns a frozen
``...Info`` record of plain values; tests assert on those records, ``figures.py`` draws them and
``report.py`` lays them out. Nothing here imports torch, Ray or MLflow; Optuna is imported lazily
inside :func:`importance` only.

* :mod:`.correlation` -- rank correlation (Spearman/Kendall between every pair of budgets, bootstrap CIs);
* :mod:`.fanova` -- fANOVA importance and marginals per budget;
* :mod:`.incumbent` -- the incumbent trajectory and the best configuration;
* :mod:`.budget_use` -- budget spent per rung and per bracket;
* :mod:`.size` -- validation error against parameter count.

Conventions shared by all of them:

* An evaluation counts as successful ("ok") when its status is ``"ok"`` and its ``val_error`` is
  finite (:func:`~jointsearch.dashboards.records.is_ok`).
* Where a trial has several ok records at the same budget (a re-run, a resumed bracket), the last
  one in the order given is used.
* A quantity that cannot be estimated is ``None`` (with a ``reason``), never a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from . import budget_use, correlation, fanova, incumbent, size
from .budget_use import *  # noqa: F403
from .correlation import *  # noqa: F403
from .fanova import *  # noqa: F403
from .incumbent import *  # noqa: F403
from .records import ok_budgets  # noqa: F401 - re-exported (__all__ below)
from .size import *  # noqa: F403

from .records import EvaluationRecord

MODULES = (correlation, fanova, incumbent, budget_use, size)


@dataclass(frozen=True)
class Analyses:
    """Every analysis of one set of records, computed once by :func:`analyse`.

    Why one object: the report lays these out and the live dashboards log the same objects as
    JSON, so ``report.html`` and ``dashboards/rank_correlation.json`` cannot disagree (they were
    computed twice, with 200 and 1000 bootstrap resamples, and their CIs differed).
    ``importance`` is ``None`` when the fANOVA forest raised; ``importance_error`` says why.
    """

    rank_correlation: correlation.RankCorrelationInfo
    paired: tuple[correlation.PairedErrors, ...]
    importance: fanova.ImportanceInfo | None
    importance_error: str | None
    incumbent: incumbent.IncumbentInfo
    budget: budget_use.BudgetInfo
    params: size.ParamsInfo
    best: EvaluationRecord | None


def analyse(records: Sequence[EvaluationRecord], space: Any | None = None, *, min_pairs: int = 5,
            n_bootstrap: int = 1000) -> Analyses:
    """Run every analysis on ``records`` (``space`` gives importance its distributions)."""
    records = list(records)
    try:
        imp, imp_error = fanova.importance(records, space), None
    except Exception as exc:  # noqa: BLE001 - a failing third-party forest must not sink the rest
        imp, imp_error = None, f"{type(exc).__name__}: {exc}"
    return Analyses(
        rank_correlation=correlation.rank_correlation(records, min_pairs=min_pairs, n_bootstrap=n_bootstrap),
        paired=correlation.paired_errors(records), importance=imp, importance_error=imp_error,
        incumbent=incumbent.incumbent_trajectory(records), budget=budget_use.budget_spent(records),
        params=size.error_vs_params(records), best=incumbent.best_configuration(records))


__all__ = sorted({name for module in MODULES for name in module.__all__} | {"ok_budgets", "Analyses", "analyse"})

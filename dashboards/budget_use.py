"""Where the budget went: per rung (budget level) and per Hyperband bracket.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass



from .records import EvaluationRecord, is_ok, spent

__all__ = ["BracketSpend", "BudgetInfo", "RungSpend", "budget_spent"]


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

"""Hyperband budget arithmetic, kept apart from any scheduler so it can be shown and tested alone.

Ray's Hyperband schedulers measure progress in integer units of a result attribute and place
their rungs at ``int(max_t * eta**-s)``. We report that attribute as ``budget / min_budget``, so
rung ``k`` sits at ``min_budget * eta**k`` in the user's own unit (epochs or seconds), exactly
the budgets of the BOHB paper (e.g. 400 s, 1200 s, 3600 s, 10800 s for eta = 3).
"""

from __future__ import annotations

import math

from .errors import UsageError

#: The result key Ray's schedulers read as "time": budget / min_budget.
PROGRESS_KEY = "budget_units"
MAX_BUDGET_RATIO = 1e9
MAX_RUNGS = 40


def check_budgets(min_budget: float, max_budget: float, eta: float) -> None:
    if not (min_budget > 0 and math.isfinite(min_budget)):
        raise UsageError(f"--min-budget must be a positive number, got {min_budget}")
    if not (max_budget >= min_budget and math.isfinite(max_budget)):
        raise UsageError(f"--max-budget must be at least --min-budget ({min_budget}), got {max_budget}")
    if not (eta > 1 and math.isfinite(eta)):
        raise UsageError(f"--eta must be greater than 1, got {eta}")
    # Bounded rung arithmetic: --eta 1.000000000001 would otherwise loop ~1e12 times, and
    # --min-budget 1e-300 --max-budget 1e300 overflow.
    ratio = max_budget / min_budget
    if not (math.isfinite(ratio) and ratio <= MAX_BUDGET_RATIO):
        raise UsageError(f"--max-budget / --min-budget must be at most {MAX_BUDGET_RATIO:g}, got {ratio:g}")
    if math.log(ratio) / math.log(eta) > MAX_RUNGS:
        raise UsageError(f"--eta {eta!r} gives {math.log(ratio) / math.log(eta):.3g} rungs between the budgets; "
                         f"at most {MAX_RUNGS} (raise --eta or --min-budget)")


def max_units(min_budget: float, max_budget: float) -> int:
    """The scheduler's ``max_t``: how many min-budgets fit in the max budget."""
    return max(1, int(round(max_budget / min_budget)))


def rung_budgets(min_budget: float, max_budget: float, eta: float) -> list[float]:
    """Every budget at which a configuration can be evaluated, ascending, ending at max_budget.

    These are Ray's Hyperband rungs (``int(max_t * eta**-s)`` units) converted back to budget
    units; a trainable reports at each of them and nowhere else, so the scheduler sees exactly
    one result per rung.
    """
    check_budgets(min_budget, max_budget, eta)
    max_t = max_units(min_budget, max_budget)
    s_max = int(round(math.log(max_t) / math.log(eta)))
    units = sorted({int(max_t * eta ** (-s)) for s in range(s_max + 1)} - {0})
    return [u * min_budget for u in units]


def budget_step(budget: float, scale: int) -> int:
    """The MLflow step of a budget: the budget itself when all budgets are whole numbers."""
    return int(round(budget * scale))


def step_scale(budgets: list[float]) -> int:
    """1 when every budget is integral, else 1000 (steps are then thousandths of a unit)."""
    return 1 if all(abs(b - round(b)) < 1e-9 for b in budgets) else 1000

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


# --- Hyperband brackets (hpbandster's order), used by the hpbandster preset, the progress
# line's planned budget and the recipes' sample counts -------------------------------------------


def bracket_of(iteration: int, n_rungs: int) -> int:
    """hpbandster's bracket of an iteration: ``s`` = halvings ahead, largest first (s_max, ..., 0)."""
    return n_rungs - 1 - iteration % n_rungs


def bracket_size(s: int, n_rungs: int, eta: float) -> int:
    """How many configurations hpbandster's bracket ``s`` samples: ``floor(n_rungs / (s+1)) * eta**s``."""
    return int((n_rungs // (s + 1)) * eta**s)


def plan_brackets(num_samples: int, n_rungs: int, eta: float) -> list[int]:
    """The number of new configurations of each BOHB iteration, so that exactly ``num_samples`` are sampled.

    Iterations follow hpbandster's order (bracket s_max first, which samples the most, then
    s_max-1, ... 0, then again from s_max); we add iterations until their sizes reach
    ``num_samples`` and cut the last one down to what is left. Budgets 1..9 with eta 3 (three
    rungs) have brackets of 9, 3, 3 configurations: ``num_samples=9`` is one iteration of 9,
    ``num_samples=20`` is 9 + 3 + 3 + 5 (the second s=2 bracket cut from 9 to 5).
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    plan: list[int] = []
    left = num_samples
    while left > 0:
        size = min(left, bracket_size(bracket_of(len(plan), n_rungs), n_rungs, eta))
        plan.append(size)
        left -= size
    return plan


def stage_sizes(n0: int, s: int, eta: float) -> list[int]:
    """Configurations per stage of a successive-halving bracket starting with ``n0`` (hpbandster's rule)."""
    return [max(int(n0 * eta ** (-i)), 1) for i in range(s + 1)]


def hyperband_configurations(min_budget: float, max_budget: float, eta: float, iterations: int) -> int:
    """New configurations that ``iterations`` hpbandster iterations sample: iteration ``i`` is
    the bracket ``s = s_max - i mod (s_max + 1)``, which starts ``floor((s_max + 1) / (s + 1)) *
    eta**s`` configurations (hpbandster's ``HyperBand.get_next_iteration``)."""
    n_rungs = int(round(math.log(max_budget / min_budget) / math.log(eta))) + 1
    return sum(bracket_size(bracket_of(i, n_rungs), n_rungs, eta) for i in range(iterations))

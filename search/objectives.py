"""Several objectives and constraints in a search (issue 15): what the settings accept, how a
constraint reaches the trainer, and how a result is judged against the constraints.

The maths (Pareto ranks, crowding, hypervolume, scalarisation) is in
``jointsearch.dashboards.pareto``, shared with the dashboards; this module only wires it into
the search. No Ray, no torch.

How each constraint is enforced:

- ``n_params`` bounds become the trainer's ``max_params`` / ``min_params`` (:func:`params_limits`),
  tightening ``--max-params``: the built-in trainer counts the parameters on the meta device and
  returns ``status="infeasible"`` with ``budget_spent = 0`` before training, so such a
  configuration costs no budget and gets no evaluation (search/infeasible.py);
- every constraint is also checked on each result the trainer reports (:func:`apply_constraints`):
  a breach turns the result's status into ``infeasible`` with the reason, keeping its measured
  metrics. That is how a user trainer's ``n_params`` or any metric known only after training
  (``latency_ms``) is enforced. The evaluation is recorded (it did spend budget) with status
  infeasible; the scheduler and the searcher see a non-ok result, i.e. a bad point (+inf), so the
  model learns to avoid the region, and the trial stops there.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from jointsearch.dashboards.pareto import Constraint, Objective, parse_constraint, parse_objectives, violations

from .errors import UsageError

#: Presets whose searcher and scheduler handle a vector of objectives: ``bohb`` (Pareto promotion
#: in AsyncSuccessiveHalving, Pareto-rank losses for the KDE searcher) and ``random`` (nothing
#: ranks; every configuration runs to the max budget).
MULTI_OBJECTIVE_PRESETS = ("bohb", "random")

#: The numeric result key that marks a breach found after training (also logged as a metric).
VIOLATIONS_KEY = "constraint_violations"


def check_objectives(settings) -> None:
    """``--objectives`` and ``--constraint`` as one-line ``UsageError``s (called by validate)."""
    try:
        objectives = parse_objectives(settings.objectives)
        constraints = tuple(parse_constraint(c) for c in settings.constraints)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not any(o.name == "val_error" and not o.maximize for o in objectives):
        raise UsageError("--objectives must include val_error (minimised): the incumbent, export and the report "
                         "are based on it; add the other metrics after it")
    if len(objectives) > 1 and settings.scheduler not in MULTI_OBJECTIVE_PRESETS:
        raise UsageError(f"--objectives with {len(objectives)} metrics needs --preset "
                         f"{' or '.join(MULTI_OBJECTIVE_PRESETS)}; --preset {settings.scheduler} ranks by val_error "
                         f"only")
    if constraints and settings.scheduler == "hpbandster":
        raise UsageError("--constraint needs a Ray preset (hpbandster's master ranks its own results); "
                         "--max-params alone works with it")
    limits = params_limits(settings.max_params, constraints)
    if limits.get("max_params", 1) < 1 or limits.get("min_params", 0) > limits.get("max_params", math.inf):
        raise UsageError("the n_params --constraint (with --max-params) admits no network size")


def params_limits(max_params: int, constraints: Sequence[Constraint]) -> dict[str, int]:
    """The trainer's size limits once the ``n_params`` constraints tighten ``--max-params``
    (0 there: no limit): ``{"max_params": ...}`` and, for a lower bound, ``{"min_params": ...}``."""
    upper = max_params if max_params > 0 else math.inf
    lower = 0
    for c in constraints:
        if c.metric != "n_params":
            continue
        if c.op == "<=":
            upper = min(upper, math.floor(c.bound))
        elif c.op == "<":
            upper = min(upper, math.ceil(c.bound) - 1)
        elif c.op == ">=":
            lower = max(lower, math.ceil(c.bound))
        else:
            lower = max(lower, math.floor(c.bound) + 1)
    out = {"max_params": int(upper) if math.isfinite(upper) else 0}
    if lower > 0:
        out["min_params"] = int(lower)
    return out


def apply_constraints(metrics: dict[str, Any], constraints: Sequence[Constraint]) -> dict[str, Any]:
    """Mark an ok result that breaks a constraint infeasible, with the reason (in place; returned)."""
    if not constraints or str(metrics.get("status", "ok")) != "ok":
        return metrics
    broken = violations(constraints, metrics)
    if broken:
        metrics["status"] = "infeasible"
        metrics["reason"] = "constraint: " + "; ".join(broken)
        metrics[VIOLATIONS_KEY] = len(broken)
    return metrics


def objective_vector(result: Mapping[str, Any], objectives: Sequence[Objective]) -> tuple[float, ...]:
    """A result's objectives, signed for minimisation; a non-ok result, or a missing or non-finite
    value, is +inf in every objective (the worst)."""
    if str(result.get("status", "ok")) != "ok":
        return tuple(math.inf for _ in objectives)
    out = []
    for o in objectives:
        value = result.get(o.name)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(float(value)):
            return tuple(math.inf for _ in objectives)
        out.append(o.sign * float(value))
    return tuple(out)

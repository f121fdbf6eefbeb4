"""Tests for the budget accounting of bench/optimizers.py: which evaluations fit a budget, who
the incumbent is, and when a threshold is first reached."""

from __future__ import annotations

import math

from bench.optimizers import Evaluation, Problem, budget_to, regret_at, trajectory, truncate


def _problem() -> Problem:
    # regret = the configuration's "true" value, whatever was observed
    return Problem("toy", "unused:unused", lambda: None, 1.0, 9.0, lambda c, v: c["true"],
                   threshold=0.1, cheap=True)


def _eval(true: float, budget: float, observed: float, cost: float) -> Evaluation:
    return Evaluation({"true": true}, budget, observed, cost)


def test_truncate_keeps_the_evaluations_that_fit_in_finishing_order():
    evals = [_eval(0.5, 1, 0.5, 1), _eval(0.4, 3, 0.4, 2), _eval(0.3, 9, 0.3, 6), _eval(0.2, 1, 0.2, 1)]
    assert truncate(evals, 3.0) == evals[:2]
    assert truncate(evals, 9.0) == evals[:3]  # the fourth would pass the total


def test_incumbent_is_the_best_observed_on_the_largest_budget_seen():
    p = _problem()
    evals = [
        _eval(0.50, 1, 0.10, 1),   # best on budget 1
        _eval(0.05, 1, 0.30, 1),   # worse observation on the same budget: not the incumbent
        _eval(0.40, 3, 0.90, 3),   # first evaluation on a larger budget wins, however bad
        _eval(0.08, 3, 0.20, 3),   # better on budget 3
    ]
    points = trajectory(evals, p)
    assert [r for _, r in points] == [0.50, 0.50, 0.40, 0.08]
    assert [s for s, _ in points] == [1 / 9, 2 / 9, 5 / 9, 8 / 9]
    assert budget_to(points, 0.1) == 8 / 9
    assert math.isinf(budget_to(points, 0.01))
    assert regret_at(points, 0.6) == 0.40 and math.isinf(regret_at(points, 0.05))


def test_a_diverged_evaluation_spends_budget_but_keeps_the_incumbent():
    p = _problem()
    points = trajectory([_eval(0.3, 1, 0.3, 1), _eval(0.0, 9, math.inf, 9)], p)
    assert points == [(1 / 9, 0.3), (10 / 9, 0.3)]

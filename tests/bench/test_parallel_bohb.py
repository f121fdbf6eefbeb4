"""bench/parallel_bohb.py: both sides really run on several workers, and its clocks and shares add up."""

from __future__ import annotations

import pytest

from bench.optimizers import Evaluation, make_problems
from bench.parallel_bohb import _at_time, _busy, run_hpbandster, run_ours, summarise


def _most_at_once(evals) -> int:
    edges = sorted([(s, 1) for s, _, _ in evals] + [(e, -1) for _, e, _ in evals], key=lambda x: (x[0], x[1]))
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def test_busy_share_and_what_had_finished_by_a_time():
    e = Evaluation({}, 1.0, 0.5, 1.0)
    evals = [(0.0, 2.0, e), (1.0, 3.0, e)]
    assert _busy(evals, 2.0, workers=2) == pytest.approx((2.0 + 1.0) / 4.0)
    assert _at_time(evals, 2.0) == [e] and len(_at_time(evals, 3.0)) == 2


def test_ours_keeps_every_slot_busy_and_is_cut_at_the_budget():
    problem = make_problems(True)["counting_ones"]  # budgets 9..81
    evals = run_ours(problem, seed=0, total=3.0, eta=3.0, workers=4)
    assert _most_at_once(evals) == 4
    summary = summarise(problem, evals, total=3.0, workers=4)
    assert summary["trained_by_wall"] <= 3.0 + 1e-9
    assert 0.9 <= summary["busy_by_wall"] <= 1.0 + 1e-9


@pytest.mark.slow
def test_hpbandster_runs_its_workers_at_the_same_time_and_pays_every_budget_in_full():
    problem = make_problems(True)["counting_ones"]
    evals = run_hpbandster(problem, seed=0, total=2.0, eta=3.0, workers=3, unit_s=0.002)
    assert _most_at_once(evals) >= 2  # threads sleeping together: evaluations overlapped
    assert all(e.cost == e.budget for _, _, e in evals)  # from scratch: no continuation
    assert all(end >= start + 0.8 * e.budget - 1e-6 for start, end, e in evals)  # slept its budget (units)

import pytest

from jointsearch.search.budgets import budget_step, rung_budgets, step_scale
from jointsearch.search.errors import UsageError


@pytest.mark.parametrize("low, high, eta, expected", [
    (1, 9, 3, [1, 3, 9]),
    (400, 10800, 3, [400, 1200, 3600, 10800]),  # the paper's budgets in seconds
    (1, 8, 2, [1, 2, 4, 8]),
    (2, 2, 3, [2]),
    (0.5, 4.5, 3, [0.5, 1.5, 4.5]),
])
def test_rungs_are_min_budget_times_powers_of_eta(low, high, eta, expected):
    assert rung_budgets(low, high, eta) == pytest.approx(expected)


@pytest.mark.parametrize("low, high, eta", [(0, 9, 3), (9, 1, 3), (1, 9, 1), (1, 9, 0.5), (-1, 9, 3)])
def test_impossible_budgets_are_usage_errors(low, high, eta):
    with pytest.raises(UsageError):
        rung_budgets(low, high, eta)


def test_fractional_budgets_get_finer_steps():
    assert step_scale([1.0, 3.0, 9.0]) == 1
    assert step_scale([0.5, 1.5, 4.5]) == 1000
    assert budget_step(1.5, 1000) == 1500 and budget_step(3.0, 1) == 3

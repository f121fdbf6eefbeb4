"""Pure analyses, on hand-made records whose answers are known."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from jointsearch.dashboards import analysis
from jointsearch.dashboards.analysis import (
    best_configuration,
    budget_spent,
    error_vs_params,
    importance,
    importance_per_budget,
    incumbent_trajectory,
    paired_errors,
    rank_correlation,
)

ERRORS_10 = [0.31, 0.12, 0.45, 0.27, 0.08, 0.52, 0.19, 0.38, 0.23, 0.41]


def _noisy(errors, scale, seed=0):
    rng = np.random.default_rng(seed)
    return [float(e + rng.normal(0, scale)) for e in errors]


class TestRankCorrelation:
    def test_rank_preserving_budgets_give_one(self, make_records):
        """A monotone transformation keeps every rank: rho = tau = 1."""
        records = make_records({1: ERRORS_10, 3: [e**2 + 0.01 for e in ERRORS_10]})
        p = rank_correlation(records).pair(1.0, 3.0)
        assert p.sufficient and p.n_pairs == 10
        assert p.spearman == pytest.approx(1.0) and p.kendall == pytest.approx(1.0)
        assert p.spearman_p < 0.01

    def test_reversed_budgets_give_minus_one(self, make_records):
        records = make_records({1: ERRORS_10, 3: [1 - e for e in ERRORS_10]})
        p = rank_correlation(records).pair(1.0, 3.0)
        assert p.spearman == pytest.approx(-1.0) and p.kendall == pytest.approx(-1.0)
        assert p.ci_low == pytest.approx(-1.0) and p.ci_high == pytest.approx(-1.0)

    def test_too_few_common_configurations_is_insufficient_not_a_number(self, make_records):
        """4 configurations reach budget 9; with min_pairs=5 that pair has no estimate."""
        records = make_records({3: ERRORS_10, 9: ERRORS_10[:4]})
        p = rank_correlation(records, min_pairs=5).pair(3.0, 9.0)
        assert p.sufficient is False and p.n_pairs == 4
        for value in (p.spearman, p.kendall, p.spearman_p, p.kendall_p, p.ci_low, p.ci_high):
            assert value is None
        assert "only 4" in p.reason

    def test_constant_errors_are_insufficient(self, make_records):
        records = make_records({1: ERRORS_10, 3: [0.5] * 10})
        p = rank_correlation(records).pair(1.0, 3.0)
        assert p.sufficient is False and p.spearman is None and "constant" in p.reason

    def test_pairs_by_trial_id_and_uses_ok_records_only(self, make_records, make_record):
        """Failed evaluations and trials missing at one budget do not pair."""
        records = make_records({1: ERRORS_10, 3: ERRORS_10[:6] + [None] * 4})
        records.append(make_record("t7", 3.0, float("nan"), status="failed"))
        assert rank_correlation(records).pair(1.0, 3.0).n_pairs == 6

    def test_uses_the_last_record_of_a_trial_at_a_budget(self, make_records, make_record):
        """A trial re-evaluated at a budget counts once, with its last error."""
        records = make_records({1: ERRORS_10, 3: ERRORS_10})
        records.append(make_record("t4", 3.0, 0.99))  # t4 was the best; now the worst
        (pe,) = paired_errors(records)
        assert pe.n_pairs == 10
        assert dict(zip(pe.trial_ids, pe.errors_high))["t4"] == 0.99

    def test_bootstrap_ci_contains_the_estimate_and_is_reproducible(self, make_records):
        records = make_records({1: ERRORS_10 * 3, 3: _noisy(ERRORS_10 * 3, 0.08)})
        a = rank_correlation(records, seed=7).pair(1.0, 3.0)
        b = rank_correlation(records, seed=7).pair(1.0, 3.0)
        assert a == b
        assert -1 <= a.ci_low <= a.spearman <= a.ci_high <= 1
        assert 0 < a.spearman < 1
        wider = rank_correlation(records, seed=7, confidence=0.99).pair(1.0, 3.0)
        assert wider.ci_low <= a.ci_low and wider.ci_high >= a.ci_high

    def test_one_entry_per_budget_pair_in_budget_order(self, make_records):
        records = make_records({27: ERRORS_10, 1: ERRORS_10, 9: ERRORS_10, 3: ERRORS_10})
        info = rank_correlation(records, n_bootstrap=50)
        assert info.budgets == (1.0, 3.0, 9.0, 27.0)
        assert [(p.budget_low, p.budget_high) for p in info.pairs] == [
            (1.0, 3.0), (1.0, 9.0), (1.0, 27.0), (3.0, 9.0), (3.0, 27.0), (9.0, 27.0)]
        with pytest.raises(KeyError):
            info.pair(3.0, 1.0)

    def test_matrix_is_upper_triangle_with_none(self, make_records):
        records = make_records({1: ERRORS_10, 3: ERRORS_10, 9: ERRORS_10[:3]})
        budgets, m = rank_correlation(records, n_bootstrap=50).matrix("spearman")
        assert budgets == (1.0, 3.0, 9.0)
        assert m[0][1] == pytest.approx(1.0)
        assert m[0][2] is None and m[1][2] is None  # only 3 pairs: insufficient
        assert all(m[i][j] is None for i in range(3) for j in range(i + 1))
        _, n = rank_correlation(records, n_bootstrap=50).matrix("n_pairs")
        assert n[0][1] == 10 and n[1][2] == 3
        with pytest.raises(ValueError, match="unknown matrix kind"):
            rank_correlation(records).matrix("pearson")  # type: ignore[arg-type]

    def test_json_and_csv_write_insufficient_as_empty(self, make_records):
        records = make_records({1: ERRORS_10, 3: ERRORS_10[:3]})
        info = rank_correlation(records, n_bootstrap=50)
        data = json.loads(json.dumps(info.to_json(), allow_nan=False))
        assert data["pairs"][0]["spearman"] is None and data["pairs"][0]["sufficient"] is False
        lines = info.to_csv().splitlines()
        assert lines[0].startswith("budget_low,budget_high,n_pairs,sufficient,spearman")
        assert lines[1].startswith("1.0,3.0,3,False,,")

    def test_no_records_gives_no_budgets(self):
        info = rank_correlation([])
        assert info.budgets == () and info.pairs == ()

    def test_bad_confidence_is_rejected(self, make_records):
        with pytest.raises(ValueError, match="confidence"):
            rank_correlation(make_records({1: ERRORS_10}), confidence=1.0)


@pytest.fixture
def conditional_configs(make_conditional_space):
    return [dict(c) for c in make_conditional_space(seed=3).sample_configuration(48)]


class TestImportance:
    def test_the_only_parameter_that_matters_dominates(self, make_lr_records, conditional_configs):
        """val_error depends on lr only; blocks, optimizer and momentum are noise."""
        records = make_lr_records(conditional_configs)
        info = importance(records, seed=0)
        assert info.sufficient and info.n_records == 48 and info.budget == 9.0
        assert next(iter(info.importances)) == "lr"
        assert info.importances["lr"] > 0.8
        assert sum(info.importances.values()) == pytest.approx(1.0)
        shares = list(info.importances.values())
        assert shares == sorted(shares, reverse=True)

    def test_conditional_space_imputes_inactive_parameters_with_their_default(
        self, make_lr_records, make_conditional_space, conditional_configs
    ):
        space = make_conditional_space()
        records = make_lr_records(conditional_configs)
        info = importance(records, space)
        n_adam = sum(c["optimizer"] == "adam" for c in conditional_configs)
        assert 0 < n_adam < 48
        assert info.sufficient and info.importances["lr"] > 0.8
        assert info.imputed_names == ("momentum",)
        (imp,) = info.imputed
        assert imp.value == pytest.approx(0.9) and imp.n_imputed == n_adam
        assert imp.source == "space default"
        assert set(info.importances) == {"lr", "optimizer", "momentum", "blocks"}
        assert info.skipped == {"filters": "constant"}

    def test_without_a_space_distributions_are_inferred(self, make_lr_records, conditional_configs):
        info = importance(make_lr_records(conditional_configs))
        assert info.importances["lr"] > 0.8
        assert info.imputed_names == ("momentum",)
        assert info.imputed[0].source == "observed median"
        assert info.skipped.get("filters") == "constant"

    def test_is_deterministic_under_the_seed(self, make_lr_records, conditional_configs):
        records = make_lr_records(conditional_configs)
        assert importance(records, seed=3, n_trees=16) == importance(records, seed=3, n_trees=16)

    def test_marginals_follow_the_bowl_in_lr(self, make_lr_records, conditional_configs):
        """Binned observed means along lr are lowest near the optimum lr = 0.03."""
        info = importance(make_lr_records(conditional_configs), top_k=2)
        assert len(info.marginals) == 2
        m = info.marginals[0]
        assert m.name == "lr" and m.kind == "numeric" and m.log
        assert sum(m.n) == 48 and len(m.grid) <= 10
        assert list(m.grid) == sorted(m.grid)
        best = m.grid[int(np.argmin(m.mean_error))]
        assert 0.01 < best < 0.1

    def test_marginal_of_a_categorical_and_of_an_imputed_parameter(
        self, make_lr_records, make_conditional_space, conditional_configs
    ):
        info = importance(make_lr_records(conditional_configs), make_conditional_space(), top_k=4)
        by_name = {m.name: m for m in info.marginals}
        assert by_name["optimizer"].kind == "categorical"
        assert set(by_name["optimizer"].grid) == {"sgd", "adam"}
        n_adam = sum(c["optimizer"] == "adam" for c in conditional_configs)
        assert by_name["momentum"].n_inactive == n_adam  # imputed values are not plotted
        assert sum(by_name["momentum"].n) == 48 - n_adam

    def test_default_budget_is_the_highest_with_enough_records(
        self, make_lr_records, conditional_configs
    ):
        records = make_lr_records(conditional_configs, budget=3.0)
        records += make_lr_records(conditional_configs[:5], budget=27.0)
        assert importance(records, n_trees=16).budget == 3.0
        thin = importance(records, budget=27.0)
        assert thin.sufficient is False and thin.importances == {} and "5 successful" in thin.reason

    def test_too_few_records_is_insufficient(self, make_lr_records, conditional_configs):
        info = importance(make_lr_records(conditional_configs[:4]))
        assert info.sufficient is False and info.importances == {}
        assert "at least 8" in info.reason and info.budget == 9.0

    def test_constant_error_is_insufficient(self, make_records):
        records = make_records({1: [0.3] * 10}, configs=[{"lr": 0.1 * (i + 1)} for i in range(10)])
        info = importance(records)
        assert info.sufficient is False and "same for every" in info.reason

    def test_per_budget_reports_every_budget(self, make_lr_records, conditional_configs):
        records = make_lr_records(conditional_configs, budget=3.0)
        records += make_lr_records(conditional_configs[:5], budget=27.0)
        per = importance_per_budget(records, n_trees=16)
        assert list(per) == [3.0, 27.0]
        assert per[3.0].sufficient and not per[27.0].sufficient

    def test_leaves_optuna_logging_as_it_was(self, make_lr_records, conditional_configs):
        import optuna

        before = optuna.logging.get_verbosity()
        importance(make_lr_records(conditional_configs), n_trees=8)
        assert optuna.logging.get_verbosity() == before


class TestIncumbentTrajectory:
    def _records(self, make_record):
        # listed out of finish order on purpose; budget 9 is the highest
        return [
            make_record("a", 9.0, 0.40, finished_at=130.0),
            make_record("b", 3.0, 0.05, finished_at=100.0),  # better, but at a lower budget
            make_record("c", 9.0, 0.30, finished_at=150.0),
            make_record("d", 9.0, float("nan"), status="failed", finished_at=160.0),
            make_record("e", 9.0, 0.35, finished_at=170.0),
            make_record("f", 9.0, 0.20, config={"lr": 0.5}, finished_at=190.0),
        ]

    def test_is_monotone_and_ends_at_the_known_best(self, make_record):
        info = incumbent_trajectory(self._records(make_record))
        assert info.budget == 9.0
        assert info.trial_ids == ("b", "a", "c", "d", "e", "f")
        assert math.isnan(info.best_error[0])  # nothing at budget 9 has finished yet
        defined = info.best_error[1:]
        assert all(x >= y for x, y in zip(defined, defined[1:]))
        assert defined == (0.40, 0.30, 0.30, 0.30, 0.20)
        assert info.incumbent_trial_id == "f" and info.incumbent_error == 0.20
        assert info.incumbent_config == {"lr": 0.5}

    def test_wall_time_and_cumulative_budget(self, make_record):
        info = incumbent_trajectory(self._records(make_record))
        assert info.wall_time_s == (0.0, 30.0, 50.0, 60.0, 70.0, 90.0)
        assert info.cumulative_budget == (3.0, 12.0, 21.0, 30.0, 39.0, 48.0)  # failed one counts
        assert info.has_wall_time

    def test_without_finish_times_keeps_the_given_order(self, make_records):
        records = make_records({1: [0.5, 0.4], 3: [0.3, 0.2]})
        records = [dataclasses.replace(r, finished_at=float("nan")) for r in records]
        info = incumbent_trajectory(records)
        assert not info.has_wall_time and info.best_error[-1] == 0.2

    def test_nothing_succeeded(self, make_record):
        info = incumbent_trajectory([make_record(val_error=float("nan"), status="failed")])
        assert info.budget is None and info.incumbent_trial_id is None
        assert info.cumulative_budget == (1.0,)


class TestBudgetSpent:
    def test_totals_per_rung_and_bracket_add_up(self, make_record):
        records = [
            make_record("a", 1.0, 0.5, bracket=0, cost_s=10.0),
            make_record("b", 1.0, 0.4, bracket=0, cost_s=12.0),
            make_record("c", 1.0, float("nan"), status="failed", bracket=0),
            make_record("a", 3.0, 0.3, bracket=0, cost_s=30.0),
            make_record("d", 3.0, 0.2, bracket=1),
            make_record("e", 9.0, 0.1),
        ]
        info = budget_spent(records)
        assert info.total_budget == 1 * 3 + 3 * 2 + 9
        assert info.n_evaluations == 6 and info.n_ok == 5
        assert [(r.budget, r.n_evaluations, r.n_ok, r.total_budget) for r in info.rungs] == [
            (1.0, 3, 2, 3.0), (3.0, 2, 2, 6.0), (9.0, 1, 1, 9.0)]
        assert sum(r.total_budget for r in info.rungs) == info.total_budget
        assert [(b.bracket, b.n_evaluations, b.total_budget, b.budgets) for b in info.brackets] == [
            (0, 4, 6.0, (1.0, 3.0)), (1, 1, 3.0, (3.0,))]
        assert info.n_without_bracket == 1
        assert info.rungs[0].total_cost_s == 22.0 and info.total_cost_s == 52.0
        assert math.isnan(info.rungs[2].total_cost_s)

    def test_continued_rungs_count_what_they_trained(self):
        """A promotion from 1 to 3 that continued trained 2 (its budget_spent), not 3; a rung
        trained from scratch (the scratch protocol) says it paid all 3."""
        from jointsearch.dashboards.records import EvaluationRecord

        records = [EvaluationRecord("a", {}, 1.0, 0.5, budget_spent=1.0),
                   EvaluationRecord("a", {}, 3.0, 0.4, budget_spent=2.0),
                   EvaluationRecord("b", {}, 1.0, 0.5, budget_spent=1.0),
                   EvaluationRecord("b", {}, 3.0, 0.4, budget_spent=3.0)]
        info = budget_spent(records)
        assert info.total_budget == 1 + 2 + 1 + 3
        assert [r.total_budget for r in info.rungs] == [2.0, 5.0]

    def test_empty(self):
        info = budget_spent([])
        assert info.total_budget == 0 and info.rungs == () and info.brackets == ()


class TestErrorVsParamsAndBest:
    def test_error_vs_params_keeps_ok_records_with_a_count(self, make_record):
        records = [
            make_record("a", 1.0, 0.5, n_params=1000),
            make_record("b", 3.0, 0.4, n_params=2000),
            make_record("c", 3.0, float("nan"), status="failed", n_params=3000),
            make_record("d", 3.0, 0.3),
        ]
        info = error_vs_params(records)
        assert info.trial_ids == ("a", "b") and info.n_params == (1000, 2000)
        assert info.val_error == (0.5, 0.4) and info.budget == (1.0, 3.0)
        assert info.n_without_params == 1

    def test_best_is_the_lowest_error_at_the_highest_budget(self, make_records, make_record):
        records = make_records({1: [0.01, 0.5, 0.6], 3: [None, 0.4, 0.3]})
        records.append(make_record("t9", 3.0, 0.0, status="diverged"))
        best = best_configuration(records)
        assert best.trial_id == "t2" and best.val_error == 0.3 and best.budget == 3.0

    def test_no_best_without_a_success(self, make_record):
        assert best_configuration([]) is None
        assert best_configuration([make_record(val_error=float("nan"), status="failed")]) is None


@pytest.mark.parametrize("module", analysis.MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_each_analysis_module_exports_exactly_what_it_defines(module):
    """Each analysis module's ``__all__`` lists every public function or record class defined in it,
    and nothing else (a forgotten or stale entry fails here)."""
    import inspect

    defined = {name for name, obj in vars(module).items()
               if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
               and obj.__module__ == module.__name__}
    assert set(module.__all__) == defined


def test_analysis_gathers_every_analysis_module():
    for module in analysis.MODULES:
        for name in module.__all__:
            assert getattr(analysis, name) is getattr(module, name)
    assert set(analysis.__all__) == ({n for m in analysis.MODULES for n in m.__all__}
                                     | {"ok_budgets", "Analyses", "analyse"})


def test_analyse_computes_each_analysis_as_the_modules_do(make_records):
    """The one computation the report and the live dashboards share equals the modules' own."""
    ok_records = make_records({1: [0.5, 0.3, 0.4, 0.2, 0.6, 0.1], 3: [0.4, 0.25, 0.35, 0.1, 0.5, 0.05]})
    a = analysis.analyse(ok_records, n_bootstrap=300)
    assert a.rank_correlation == analysis.rank_correlation(ok_records, n_bootstrap=300)
    assert repr(a.budget) == repr(analysis.budget_spent(ok_records))  # nan costs: compare the text
    assert a.best == analysis.best_configuration(ok_records)
    assert (a.importance is None) == (a.importance_error is not None)

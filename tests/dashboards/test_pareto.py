"""The multi-objective maths (dashboards/pareto.py) on fronts whose answers are known by hand."""

import math

import numpy as np
import pytest

from jointsearch.dashboards.pareto import (Constraint, Objective, chebyshev, crowding_distance, hypervolume,
                                           knee_index, nondominated_ranks, pareto_fronts, parse_constraint,
                                           parse_objectives, promotion_order, signed, violations)
from jointsearch.dashboards.records import EvaluationRecord, records_from_json, records_to_json


class TestSorting:
    def test_ranks_of_three_nested_fronts(self):
        F = np.array([[1, 5], [2, 2], [5, 1],  # front 0
                      [2, 6], [3, 3], [6, 2],  # front 1 (each dominated by one of front 0)
                      [7, 7]])
        assert nondominated_ranks(F).tolist() == [0, 0, 0, 1, 1, 1, 2]

    def test_duplicates_share_a_front_and_non_finite_rows_come_last(self):
        F = np.array([[1, 1], [1, 1], [math.inf, 0], [2, 2]])
        assert nondominated_ranks(F).tolist() == [0, 0, 2, 1]

    def test_crowding_keeps_the_extremes_and_prefers_isolated_points(self):
        F = np.array([[0, 10], [1, 9], [1.1, 8.9], [10, 0]])
        d = crowding_distance(F)
        assert math.isinf(d[0]) and math.isinf(d[3])
        assert d[1] < math.inf and d[2] < math.inf
        F2 = np.array([[0, 10], [5, 5], [9, 1], [10, 0]])  # the middle point is isolated
        assert crowding_distance(F2)[1] > crowding_distance(F2)[2]

    def test_promotion_order_front_first_then_spread(self):
        F = np.array([[3, 3], [0, 10], [10, 0], [5, 5.5], [4.9, 5]])
        order = promotion_order(F).tolist()
        assert set(order[:4]) == {0, 1, 2, 4}  # front 0: (3,3), the two extremes, (4.9, 5)
        assert order[-1] == 3  # dominated by (3, 3)
        assert order.index(1) < order.index(4) and order.index(2) < order.index(4)  # extremes first (inf crowding)


class TestHypervolume:
    def test_two_dimensional_staircase(self):
        F = np.array([[1, 3], [2, 2], [3, 1]])
        # area dominated under ref (4, 4): 3x1 + 2x1 + 1x1 = 6
        assert hypervolume(F, [4, 4]) == pytest.approx(6.0)

    def test_dominated_and_outside_points_add_nothing(self):
        F = np.array([[1, 3], [2, 2], [3, 1], [3, 3], [5, 0], [math.inf, 1]])
        assert hypervolume(F, [4, 4]) == pytest.approx(6.0)

    def test_three_dimensions_match_inclusion_exclusion(self):
        F = np.array([[1, 2, 2], [2, 1, 2]])
        # boxes to ref (3,3,3): 2*1*1 = 2 each... exactly: 2x1x1 + 1x2x1 - overlap 1x1x1 = 3
        assert hypervolume(F, [3, 3, 3]) == pytest.approx(3.0)
        rng = np.random.default_rng(0)
        P = rng.random((40, 3))
        hv = hypervolume(P, [1, 1, 1])
        samples = rng.random((200_000, 3))
        dominated = (P[None, :, :] <= samples[:, None, :]).all(2).any(1).mean()
        assert hv == pytest.approx(dominated, abs=0.01)


class TestKneeAndScalarisation:
    def test_knee_is_the_bend_of_an_l_shaped_front(self):
        F = np.array([[0, 10], [0.5, 2], [1, 1], [2, 0.5], [10, 0]])
        assert knee_index(F) == 2

    def test_knee_of_a_straight_front_is_not_an_extreme_only_if_it_bends(self):
        assert knee_index(np.array([[0.0, 1.0]])) == 0
        assert knee_index(np.array([[0, 1], [1, 0]])) in (0, 1)

    def test_chebyshev_weights_pick_their_end_of_the_front(self):
        F = np.array([[0, 10], [5, 5], [10, 0], [math.inf, 0]])
        s_first = chebyshev(F, [0.99, 0.01])
        s_second = chebyshev(F, [0.01, 0.99])
        assert int(np.argmin(s_first)) == 0 and int(np.argmin(s_second)) == 2
        assert math.isinf(s_first[3])
        assert int(np.argmin(chebyshev(F, [0.5, 0.5]))) == 1


class TestParsing:
    def test_objectives_directions_and_signs(self):
        obj = parse_objectives(["val_error", "n_params", "accuracy:max"])
        assert obj == (Objective("val_error"), Objective("n_params"), Objective("accuracy", True))
        assert signed([[0.1, 10, 0.9]], obj).tolist() == [[0.1, 10, -0.9]]
        assert parse_objectives("val_error cost_s") == (Objective("val_error"), Objective("cost_s"))

    @pytest.mark.parametrize("bad", [[], ["val_error", "val_error"], ["x:up"], ["1abc"], ["a b"], [""]])
    def test_bad_objectives(self, bad):
        with pytest.raises(ValueError):
            parse_objectives(bad)

    def test_constraints(self):
        c = parse_constraint("n_params<=5e6")
        assert c == Constraint("n_params", "<=", 5e6) and c.satisfied(5e6) and not c.satisfied(5e6 + 1)
        assert parse_constraint(" latency_ms > 2 ").satisfied(3) and not parse_constraint("x<1").satisfied(1)
        assert violations([c, parse_constraint("latency_ms<10")], {"n_params": 6e6}) == [
            "n_params=6e+06 breaks n_params<=5e+06", "latency_ms missing, needed by latency_ms<10"]

    @pytest.mark.parametrize("bad", ["n_params", "n_params=5", "n_params<=x", "<=5", "n_params<=inf", "a<=1<=2"])
    def test_bad_constraints(self, bad):
        with pytest.raises(ValueError):
            parse_constraint(bad)


def _rec(tid, err, n, budget=3.0, status="ok", **metrics):
    return EvaluationRecord(tid, {"x": tid}, budget, err, status=status, n_params=n, metrics=metrics)


class TestFrontOfRecords:
    def test_front_per_budget_with_dominated_points_failures_left_out(self):
        records = [_rec("a", 0.1, 1000), _rec("b", 0.2, 100), _rec("c", 0.3, 10), _rec("d", 0.3, 1000),
                   _rec("e", 0.05, 5, status="infeasible"), _rec("a", 0.5, 1000, budget=1.0)]
        infos = pareto_fronts(records, ["val_error", "n_params"])
        assert [i.budget for i in infos] == [1.0, 3.0]
        top = infos[-1]
        assert [p.trial_id for p in top.front] == ["a", "b", "c"]
        assert [p.trial_id for p in top.dominated] == ["d"]
        assert top.front[top.knee].trial_id == "b"
        assert top.hypervolume > 0 and top.to_json()["front"][0]["values"] == {"val_error": 0.1, "n_params": 1000}

    def test_any_metric_of_the_trainer_counts_and_survives_json(self):
        records = [_rec("a", 0.1, None, latency_ms=9.0), _rec("b", 0.2, None, latency_ms=3.0),
                   _rec("c", 0.3, None)]  # no latency: cannot be placed
        again = records_from_json(records_to_json(records))
        assert again[0].metrics == {"latency_ms": 9.0}
        infos = pareto_fronts(again, ["val_error", "latency_ms"])
        assert [p.trial_id for p in infos[0].front] == ["a", "b"]

"""Tests for bench/budget_oracle.py: each contender runs on the budgets it names, with the
good-set fraction it names."""

from __future__ import annotations

import json

from bench import budget_oracle
from bench import optimizers as O
from jointsearch.search import kde


def test_a_fixed_minimum_budget_never_evaluates_below_it_and_the_fraction_reaches_the_proposer(monkeypatch):
    problem = O.make_problems(False)["inverted_hartmann6"]
    seen_budgets, fractions = set(), []
    evaluator = O.Evaluator

    class Recording(evaluator):
        def __call__(self, config, budget):
            seen_budgets.add(budget)
            return super().__call__(config, budget)

    original = kde.KDEProposer.__init__

    def spy(self, space, **kwargs):
        original(self, space, **kwargs)
        fractions.append(self.top_n_percent)

    monkeypatch.setattr(O, "Evaluator", Recording)
    monkeypatch.setattr(kde.KDEProposer, "__init__", spy)
    regrets = budget_oracle.final_regrets(problem, [9.0, 27.0], 1, adaptive=False, top_n_percent=30)
    assert seen_budgets == {9.0, 27.0} and fractions == [30]
    assert len(regrets) == 1 and 0 <= regrets[0] < 3.33  # Hartmann-6's regret is below its range


def test_the_json_has_every_contender_per_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_RESULTS_DIR", str(tmp_path))
    monkeypatch.setattr("bench.common.RESULTS", tmp_path)
    assert budget_oracle.main(["--problems", "mixed_hartmann6", "--seeds", "2", "--out", "oracle"]) == 0
    results = json.loads((tmp_path / "oracle.json").read_text())["results"]["mixed_hartmann6"]
    budgets = {label: r["budgets"] for label, r in results.items()}
    assert budgets == {"bohb (adaptive budgets), top 15%": [1.0, 3.0, 9.0, 27.0],
                       "plain bohb, min budget 1, top 15%": [1.0, 3.0, 9.0, 27.0],
                       "plain bohb, min budget 3, top 15%": [3.0, 9.0, 27.0],
                       "plain bohb, min budget 9, top 15%": [9.0, 27.0]}
    assert all(len(r["final_regret_per_seed"]) == 2 for r in results.values())

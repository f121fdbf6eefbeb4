"""bench/simulate.py: the discrete-event controller that drives the production bohb objects."""

from __future__ import annotations

import math

import pytest

from bench.simulate import simulate_bohb

BUDGETS = [1.0, 3.0, 9.0]


def _space():
    import ConfigSpace as CS

    space = CS.ConfigurationSpace(name="two")
    space.add([CS.UniformFloatHyperparameter("x", 0.0, 1.0), CS.UniformFloatHyperparameter("y", 0.0, 1.0)])
    return space


def _objective(config, budget):
    return (config["x"] - 0.3) ** 2 + (config["y"] - 0.6) ** 2 + 0.1 / budget


@pytest.mark.parametrize("slots", [1, 3])
def test_accounting_slots_and_continuation(slots):
    out = simulate_bohb(_objective, _space(), BUDGETS, slots=slots, num_samples=30, seed=0, adaptive=False)
    evals = out["evaluations"]
    assert [e.finished for e in evals] == sorted(e.finished for e in evals)  # finishing order
    by_trial: dict[str, list] = {}
    for e in evals:
        by_trial.setdefault(e.trial_id, []).append(e)
    assert len(by_trial) == 30
    for trial in by_trial.values():  # continuation: rung k costs b_k - b_{k-1}, rungs in order
        assert [e.rung for e in trial] == list(range(len(trial)))
        assert sum(e.cost for e in trial) == pytest.approx(BUDGETS[len(trial) - 1])
        assert all(0.8 * e.cost - 1e-9 <= e.finished - e.started <= 1.2 * e.cost + 1e-9 for e in trial)
    # never more than `slots` evaluations at once
    edges = sorted([(e.started, 1) for e in evals] + [(e.finished, -1) for e in evals], key=lambda p: (p[0], p[1]))
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak == slots
    assert any(len(t) == len(BUDGETS) for t in by_trial.values())  # the search ends at the max budget


def test_every_promotion_is_by_the_asha_rule():
    """Without adaptive budgets: a configuration goes from rung k to k+1 only if, when it went
    on, it was in the top 1/eta of the rung-k results reported so far (or was the end-of-search
    finalist, which only happens once nothing more can come)."""
    out = simulate_bohb(_objective, _space(), BUDGETS, slots=2, num_samples=27, seed=3, adaptive=False)
    evals = out["evaluations"]
    last_new = max(e.started for e in evals if e.rung == 0)
    for e in evals:
        if e.rung == 0:
            continue
        before = [p for p in evals if p.rung == e.rung - 1 and p.finished <= e.started + 1e-12]
        mine = next(p for p in before if p.trial_id == e.trial_id)
        better = sum(p.value < mine.value for p in before)
        assert better < math.floor(len(before) / 3) or e.started >= last_new, (e.trial_id, e.rung)


def test_same_seed_same_search_and_adaptive_decisions_are_reported():
    def inverted(config, budget):
        v = _objective(config, budget)
        return -v if budget < 3 else v

    a = simulate_bohb(inverted, _space(), BUDGETS, slots=2, num_samples=60, seed=1)
    b = simulate_bohb(inverted, _space(), BUDGETS, slots=2, num_samples=60, seed=1)
    assert [(e.trial_id, e.rung, e.value) for e in a["evaluations"]] == [
        (e.trial_id, e.rung, e.value) for e in b["evaluations"]]
    assert a["decisions"] and a["decisions"][0]["action"] == "drop" and a["decisions"][0]["budget"] == 1.0


def test_stop_after_bounds_the_spend():
    out = simulate_bohb(_objective, _space(), BUDGETS, slots=2, num_samples=10_000, seed=0, stop_after=5)
    spent = sum(e.cost for e in out["evaluations"])
    assert 5 * 9.0 <= spent <= 5 * 9.0 + 2 * 9.0  # at most the evaluations already running go on

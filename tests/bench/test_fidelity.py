"""Tests for bench/fidelity.py: the claim that lets it reuse restarts' low rungs for scratch, and
the cost accounting of the Hyperband replay."""

from __future__ import annotations

import math

import pytest

from bench.fidelity import PROTOCOLS, _scratch_equals_restarts, evaluate_config, replay_hyperband


def test_scratch_low_rungs_are_restarts_cycle_ends_for_eta_3():
    """T0 = 1 then cycles 1 + 2 end at 3: scratch's schedule at 1 and 3 is restarts' at rungs 1, 3, 9."""
    budgets = [1.0, 3.0, 9.0]
    assert _scratch_equals_restarts(1.0, budgets) and _scratch_equals_restarts(3.0, budgets)
    assert not _scratch_equals_restarts(9.0, budgets)  # T0 = 9/7: other cycle ends


def test_scratch_training_at_shared_rungs_equals_restarts_bit_for_bit(tmp_path):
    """What evaluate_config checks for its first --verify configurations, on real training."""
    config = {"res_blocks_1": 1, "res_blocks_2": 1, "filters_0": 4, "learning_rate": 0.05,
              "batch_size": 64, "mixup_alpha": 0.2, "cutout_length": 2}
    row = evaluate_config(0, config, [1.0, 3.0], dataset="synthetic", seed=0, verify=1, work=tmp_path)
    assert row["verified"] == 1 and row["reused_budgets"] == [1.0]
    assert [r["budget_spent"] for r in row["results"]["scratch"]] == [1.0, 3.0]
    assert [r["budget_spent"] for r in row["results"]["restarts"]] == [1.0, 2.0]


def _rows(n: int) -> list[dict]:
    """n configurations whose error at every budget is their index / n (so config 0 is best)."""
    rows = []
    for i in range(n):
        results = {p: [{"budget": b, "val_error": i / n, "status": "ok"} for b in (1.0, 3.0, 9.0)]
                   for p in PROTOCOLS}
        rows.append({"index": i, "results": results})
    return rows


@pytest.mark.parametrize("protocol,first_bracket_cost", [("restarts", 9 + 3 * 2 + 6), ("continue", 21),
                                                         ("scratch", 9 + 3 * 3 + 9)])
def test_replay_charges_each_protocol_what_it_pays(protocol, first_bracket_cost):
    """One bracket of 9 -> 3 -> 1: continued protocols pay differences (21), scratch pays all (27)."""
    run = replay_hyperband(_rows(40), protocol, 0, first_bracket_cost, [1.0, 3.0, 9.0], 3.0)
    assert run["epochs_spent"] == first_bracket_cost and run["evaluations"] == 13
    assert run["configurations_seen"] == 9
    assert 0.0 <= run["reference_error"] < 1.0 and math.isfinite(run["reference_error"])


def test_replay_is_seeded_and_finds_the_best_when_it_sees_everything():
    rows = _rows(9)
    a = replay_hyperband(rows, "restarts", 3, 21, [1.0, 3.0, 9.0], 3.0)
    assert a == replay_hyperband(rows, "restarts", 3, 21, [1.0, 3.0, 9.0], 3.0)
    assert a["reference_error"] == 0.0  # all 9 seen, the best promoted to the top

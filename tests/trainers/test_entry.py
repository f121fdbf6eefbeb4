"""Tests for trainers/entry.py: the plain-dict interface the search layer calls, and the
boundary that keeps Ray and MLflow out of the trainer."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jointsearch.trainers import DatasetError, evaluate, retrain
from jointsearch.trainers.entry import FIDELITY_PROTOCOLS, schedule_settings, scratch_t0
from jointsearch.trainers.loop import lr_factor, train
from jointsearch.trainers.data import load_dataset

TINY = {"res_blocks_1": 1, "res_blocks_2": 1, "filters_0": 4, "learning_rate": 0.05,
        "batch_size": 64, "mixup_alpha": 0.2, "cutout_length": 2}
KEYS = {"val_error", "train_loss", "cost_s", "budget", "budget_unit", "status", "n_params",
        "steps", "device", "budget_spent"}


def test_evaluate_returns_plain_python_values():
    result = evaluate(TINY, 1, dataset="synthetic")
    assert set(result) == KEYS
    for key, value in result.items():
        assert type(value) in (float, int, str), key
    assert result["status"] == "ok" and result["budget"] == 1.0
    assert result["budget_unit"] == "epochs" and result["device"] == "cpu"


@pytest.mark.parametrize("fidelity", ["restarts", "continue"])
def test_evaluate_continues_on_one_schedule(tmp_path, fidelity):
    """Budget 1 then 3 (continued, rungs 1 and 3) equals budget 3 in one go, and the continued
    call says it spent only the difference."""
    kw = dict(dataset="synthetic", max_budget=3, rungs=(1.0, 3.0), fidelity=fidelity)
    whole = evaluate(TINY, 3, **kw)
    first = evaluate(TINY, 1, save_dir=str(tmp_path / "b1"), **kw)
    rest = evaluate(TINY, 3, checkpoint_dir=str(tmp_path / "b1"), **kw)
    assert rest["steps"] == whole["steps"]
    assert rest["val_error"] == whole["val_error"]
    assert rest["train_loss"] == whole["train_loss"]
    assert (first["budget_spent"], rest["budget_spent"], whole["budget_spent"]) == (1.0, 2.0, 3.0)


def test_scratch_ignores_the_checkpoint_and_pays_the_whole_budget(tmp_path):
    kw = dict(dataset="synthetic", max_budget=3, rungs=(1.0, 3.0), fidelity="scratch")
    evaluate(TINY, 1, save_dir=str(tmp_path / "b1"), **kw)
    alone = evaluate(TINY, 3, **kw)
    given = evaluate(TINY, 3, checkpoint_dir=str(tmp_path / "b1"), **kw)
    assert given["budget_spent"] == 3.0
    assert given["val_error"] == alone["val_error"] and given["steps"] == alone["steps"]


def test_scratch_t0_is_the_authors_per_budget_rule():
    """T0 = b / (2**(k+1) - 1): 400, 400, 514.29, 720 s for the paper's four budgets."""
    rungs = (400.0, 1200.0, 3600.0, 10800.0)
    assert [round(scratch_t0(b, rungs), 2) for b in rungs] == [400.0, 400.0, 514.29, 720.0]
    assert [schedule_settings("scratch", b, rungs=rungs).t0 for b in rungs] == \
        [scratch_t0(b, rungs) for b in rungs]


def test_continue_keeps_one_t0_for_all_rungs():
    rungs = (400.0, 1200.0, 3600.0, 10800.0)
    assert {schedule_settings("continue", b, rungs=rungs, max_budget=10800).t0 for b in rungs} == {720.0}


@pytest.mark.parametrize("fidelity", FIDELITY_PROTOCOLS)
def test_every_protocol_ends_every_rung_annealed_except_continue(fidelity):
    """Just before each rung budget the learning rate factor is ~0 under restarts and scratch
    (each evaluation at a cycle minimum); continue evaluates its low rungs mid-cycle."""
    rungs = (400.0, 1200.0, 3600.0, 10800.0)
    ends = [lr_factor(b - 1e-6, s, s.t0) for b in rungs
            for s in [schedule_settings(fidelity, b, rungs=rungs, max_budget=10800)]]
    if fidelity == "continue":
        assert ends[-1] == pytest.approx(0.0, abs=1e-6) and max(ends[:-1]) > 0.3
    else:
        assert ends == pytest.approx([0.0] * 4, abs=1e-6)


def test_every_rung_evaluation_under_restarts_is_at_the_cycle_minimum(tmp_path):
    """A real run on digits through rungs 1, 3, 9 epochs, continued from rung to rung: the
    learning rate of the last step before each evaluation is the lowest of its cycle, and the
    first step after it is a restart (the highest)."""
    data = load_dataset("digits")
    config = {**TINY, "learning_rate": 0.1}
    rungs = (1.0, 3.0, 9.0)
    settings = schedule_settings("restarts", 9, rungs=rungs)
    lrs: list[float] = []
    import torch

    original_step = torch.optim.SGD.step

    def spy(self, *args, **kwargs):
        lrs.append(self.param_groups[0]["lr"])
        return original_step(self, *args, **kwargs)

    checkpoint, steps_at_rung = None, []
    torch.optim.SGD.step = spy
    try:
        for k, budget in enumerate(rungs):
            record = train(config, budget, data, settings=settings, checkpoint=checkpoint,
                           save_checkpoint=tmp_path / f"r{k}")
            checkpoint = tmp_path / f"r{k}"
            steps_at_rung.append(record.steps)
    finally:
        torch.optim.SGD.step = original_step
    assert len(lrs) == steps_at_rung[-1]
    start = 0
    for end in steps_at_rung:
        cycle = lrs[start:end]
        assert cycle[-1] == min(cycle) < 0.02 * 0.1       # the evaluation sees an annealed lr
        assert cycle[0] == max(cycle) == pytest.approx(0.1)  # each cycle starts at a restart
        start = end


def test_infeasible_configuration_is_never_trained():
    """Above max_params: status "infeasible", a reason, the worst error, nothing spent."""
    big = {**TINY, "filters_0": 64}
    result = evaluate(big, 1, dataset="synthetic", max_params=1000)
    assert result["status"] == "infeasible" and result["steps"] == 0
    assert result["val_error"] == 1.0 and result["cost_s"] == 0.0 and result["budget_spent"] == 0.0
    assert "1,000" in result["reason"] and result["n_params"] > 1000
    assert evaluate(TINY, 1, dataset="synthetic", max_params=0)["status"] == "ok"


def test_retrain_of_the_papers_3h_budget_uses_t0_720():
    from jointsearch.trainers.entry import retrain_settings

    assert retrain_settings(10800).t0 == 720.0 and retrain_settings(10800).t_mult == 2.0


def test_retrain_adds_the_test_error():
    result = retrain(TINY, 1, dataset="synthetic")
    assert set(result) == KEYS | {"test_error"}
    assert 0.0 <= result["test_error"] <= 1.0


def test_a_plain_configuration_learns_mnist5k_at_28x28_in_one_epoch():
    """The 28x28 images go through the stride stages (28, 14, 7) and are learnt: one epoch (188
    steps) takes a plain configuration well below chance (0.9; it reaches about 0.66, as a
    plain two-layer CNN with global pooling does after one epoch)."""
    config = {**TINY, "mixup_alpha": 0.0, "cutout_length": 0, "learning_rate": 0.1, "momentum": 0.9,
              "batch_size": 16}
    result = evaluate(config, 1, dataset="mnist5k")
    assert result["status"] == "ok" and result["steps"] == 188 and result["val_error"] < 0.8, result


def test_every_data_set_s_shape_is_the_one_the_memory_planner_assumes():
    """memory.DATASET_SHAPES is a second statement of each data set's shape (the planner cannot
    load the data): it must match what load_dataset returns (CIFAR-10's files are tested in
    test_data.py; its shape is the paper's)."""
    from jointsearch.trainers.facts import DATASETS
    from jointsearch.trainers.memory import DATASET_SHAPES

    assert set(DATASET_SHAPES) == set(DATASETS)
    for name in DATASETS:
        if name != "cifar10":
            data = load_dataset(name)
            assert DATASET_SHAPES[name] == (data.in_channels, data.image_size, data.num_classes), name
    assert DATASET_SHAPES["cifar10"] == (3, 32, 10)


def test_unknown_dataset_is_a_dataset_error():
    with pytest.raises(DatasetError, match="known"):
        evaluate(TINY, 1, dataset="mnist-but-not-really")


def test_trainer_never_imports_ray_or_mlflow():
    code = ("import sys, jointsearch.trainers, jointsearch.trainers.entry; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'mlflow')); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_authors_variant_trains_and_differs_from_the_published_one():
    """--trainer-arg variant=authors reaches the model and the crops: same steps, other result."""
    config = {**TINY, "res_branches_1": 2, "shakedrop_death_rate": 0.3}
    authors = evaluate(config, 1, dataset="synthetic", variant="authors")
    published = evaluate(config, 1, dataset="synthetic")
    assert authors["status"] == published["status"] == "ok" and authors["steps"] == published["steps"]
    assert authors["train_loss"] != published["train_loss"]
    assert retrain(config, 1, dataset="synthetic", variant="authors")["status"] == "ok"

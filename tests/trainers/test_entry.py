"""Tests for trainers/entry.py: the plain-dict interface the search layer calls, and the
boundary that keeps Ray and MLflow out of the trainer."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jointsearch.trainers import DatasetError, evaluate, retrain

TINY = {"res_blocks_1": 1, "res_blocks_2": 1, "filters_0": 4, "learning_rate": 0.05,
        "batch_size": 64, "mixup_alpha": 0.2, "cutout_length": 2}
KEYS = {"val_error", "train_loss", "cost_s", "budget", "budget_unit", "status", "n_params",
        "steps", "device"}


def test_evaluate_returns_plain_python_values():
    result = evaluate(TINY, 1, dataset="synthetic")
    assert set(result) == KEYS
    for key, value in result.items():
        assert type(value) in (float, int, str), key
    assert result["status"] == "ok" and result["budget"] == 1.0
    assert result["budget_unit"] == "epochs" and result["device"] == "cpu"


def test_evaluate_continues_on_one_schedule(tmp_path):
    """Budget 1 then 3 (continued, max_budget 3) equals budget 3 in one go."""
    whole = evaluate(TINY, 3, dataset="synthetic", max_budget=3)
    evaluate(TINY, 1, dataset="synthetic", max_budget=3, save_dir=str(tmp_path / "b1"))
    rest = evaluate(TINY, 3, dataset="synthetic", max_budget=3,
                    checkpoint_dir=str(tmp_path / "b1"))
    assert rest["steps"] == whole["steps"]
    assert rest["val_error"] == whole["val_error"]
    assert rest["train_loss"] == whole["train_loss"]


def test_retrain_adds_the_test_error():
    result = retrain(TINY, 1, dataset="synthetic")
    assert set(result) == KEYS | {"test_error"}
    assert 0.0 <= result["test_error"] <= 1.0


def test_unknown_dataset_is_a_dataset_error():
    with pytest.raises(DatasetError, match="known"):
        evaluate(TINY, 1, dataset="mnist-but-not-really")


def test_trainer_never_imports_ray_or_mlflow():
    code = ("import sys, jointsearch.trainers, jointsearch.trainers.entry; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'mlflow')); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

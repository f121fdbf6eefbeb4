"""--keep-checkpoints: a finished search keeps O(promotable trials) checkpoints, not one per
evaluation, logs the disk it holds, and resume (tests/search/test_signals.py) still works."""

from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest

from jointsearch.search import run_search
from jointsearch.search.ray_checkpoints import CheckpointPruner, checkpoint_dirs


def _trial(tmp_path, trial_id, n_checkpoints):
    trial_dir = tmp_path / f"trial_{trial_id}"
    for i in range(n_checkpoints):
        (trial_dir / f"checkpoint_{i:06d}").mkdir(parents=True)
        (trial_dir / f"checkpoint_{i:06d}" / "state").write_bytes(b"x" * 100)
    return SimpleNamespace(trial_id=trial_id, path=str(trial_dir))


def _names(trial):
    return [p.name for p in checkpoint_dirs(Path(trial.path))]


@pytest.mark.parametrize("keep, a_left, b_left", [("promotable", 0, 1), ("none", 0, 0), ("all", 2, 3)])
def test_ended_trials_lose_their_checkpoints_except_the_incumbents_latest(tmp_path, keep, a_left, b_left):
    logged = []
    pruner = CheckpointPruner(keep, lambda metrics, step: logged.append(metrics["disk_bytes"]))
    a, b = _trial(tmp_path, "a", 2), _trial(tmp_path, "b", 3)
    pruner.on_trial_result(0, [], a, {"val_error": 0.5, "budget": 3.0})
    pruner.on_checkpoint(0, [], a, None)
    pruner.on_trial_result(0, [], b, {"val_error": 0.2, "budget": 3.0})
    pruner.on_checkpoint(0, [], b, None)
    if keep != "all":  # a running or paused trial keeps its latest, for a promotion
        assert _names(a) == ["checkpoint_000001"] and _names(b) == ["checkpoint_000002"]
    pruner.on_trial_complete(0, [], a)
    pruner.on_trial_error(0, [], b) if keep == "none" else pruner.on_trial_complete(0, [], b)
    pruner.on_experiment_end([])
    assert len(_names(a)) == a_left and len(_names(b)) == b_left
    assert logged and logged[-1] == 100 * (a_left + b_left)


def test_an_ended_trial_that_loses_the_incumbency_loses_its_checkpoint(tmp_path):
    pruner = CheckpointPruner("promotable")
    a, b = _trial(tmp_path, "a", 1), _trial(tmp_path, "b", 1)
    pruner.on_trial_result(0, [], a, {"val_error": 0.5, "budget": 1.0})
    pruner.on_trial_complete(0, [], a)
    assert _names(a) == ["checkpoint_000000"]  # the incumbent so far
    pruner.on_trial_result(0, [], b, {"val_error": 0.7, "budget": 3.0})  # a higher budget wins
    assert _names(a) == []


@pytest.mark.slow
def test_a_finished_search_keeps_only_the_incumbents_checkpoint(make_settings, ray_runtime, tmp_path):
    settings = make_settings(num_samples=9, experiment="disk")  # BOHB, budgets 1, 3, 9
    summary = run_search(settings)
    left = sorted(Path(settings.storage_path).rglob("checkpoint_*"))
    assert summary.n_evaluations > 9 and len(left) <= 1, left
    disk = mlflow.MlflowClient(settings.mlflow_uri).get_metric_history(summary.search_run_id, "disk_bytes")
    assert disk and disk[-1].value >= 0

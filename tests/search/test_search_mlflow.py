"""A real BOHB search on Ray Tune, recorded in a real MLflow store and read back with the client."""

import json

import mlflow
import pytest

from jointsearch import spaces
from jointsearch.search import export_best, load_export, read_search, run_search

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished_search(ray_runtime, tmp_path_factory, fresh_store):
    """One fake-trainer search shared by the tests below (a search costs ~10 s here)."""
    from jointsearch.search import SearchSettings

    tmp = tmp_path_factory.mktemp("search")
    settings = SearchSettings(space="tiny", min_budget=1, max_budget=9, eta=3, num_samples=13, seed=1,
                              mlflow_uri=fresh_store(tmp / 'mlflow.db'), experiment="bohb-test",
                              storage_path=str(tmp / "ray"), trainer="jointsearch.search.testing:fake_trainer")
    summary = run_search(settings)
    return settings, summary, tmp


def _children(client, settings, parent_id):
    exp = client.get_experiment_by_name(settings.experiment)
    return client.search_runs([exp.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'")


def test_one_parent_run_with_settings_and_one_child_per_trial(finished_search):
    settings, summary, _ = finished_search
    client = mlflow.MlflowClient(settings.mlflow_uri)
    parent = client.get_run(summary.search_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["scheduler"] == "bohb" and parent.data.params["eta"] == "3"
    assert parent.data.tags["jointsearch.kind"] == "search"
    children = _children(client, settings, summary.search_run_id)
    assert len(children) == settings.num_samples == summary.n_trials
    space = spaces.get("tiny")
    for child in children:
        assert set(child.data.params) == set(space.keys())
        assert child.info.status == "FINISHED"
        assert child.data.tags["final_status"] in ("completed", "stopped")
        assert child.data.tags.get("bracket") not in (None, "")


def test_validation_error_is_logged_at_every_budget_reached_with_step_budget(finished_search):
    settings, summary, _ = finished_search
    client = mlflow.MlflowClient(settings.mlflow_uri)
    steps_seen = set()
    for child in _children(client, settings, summary.search_run_id):
        history = client.get_metric_history(child.info.run_id, "val_error")
        steps = [m.step for m in history]
        assert steps and len(steps) == len(set(steps))
        steps_seen |= set(steps)
        if child.data.tags["final_status"] == "completed":
            assert max(steps) == 9
    assert steps_seen == {1, 3, 9}  # metrics at more than one budget
    assert summary.evaluations_per_budget[1.0] > summary.evaluations_per_budget[9.0] >= 1


def test_promoted_trials_continue_from_their_checkpoint(finished_search):
    """The fake trainer records how much budget each call really trained: a promotion from 1 to 3
    epochs must train 2 more, not 3 from scratch."""
    settings, summary, _ = finished_search
    client = mlflow.MlflowClient(settings.mlflow_uri)
    promoted = 0
    for child in _children(client, settings, summary.search_run_id):
        trained = {m.step: m.value for m in client.get_metric_history(child.info.run_id, "trained_budget")}
        resumed = {m.step: m.value for m in client.get_metric_history(child.info.run_id, "resumed_from")}
        budgets = sorted(trained)
        for lower, higher in zip(budgets, budgets[1:]):
            promoted += 1
            assert resumed[higher] == lower
            assert trained[higher] == higher - lower
    assert promoted >= 2


def test_read_search_and_export_give_the_best_at_the_highest_budget(finished_search, tmp_path):
    settings, summary, _ = finished_search
    results = read_search(settings.mlflow_uri, settings.experiment)
    assert results.search_run_id == summary.search_run_id
    top = max(r.budget for r in results.records)
    best_at_top = min(r.val_error for r in results.records if r.budget == top)
    out = tmp_path / "best.json"
    payload = export_best(settings.mlflow_uri, settings.experiment, out)
    assert payload["budget"] == top and payload["val_error"] == pytest.approx(best_at_top)
    written = json.loads(out.read_text())
    space = spaces.from_json(json.dumps(written["space"]))
    space.check_configuration(spaces.validate_config(space, written["config"]))
    assert load_export(out)["config"] == payload["config"]
    assert isinstance(written["config"]["batch_size"], int)

"""One contract for every preset (Optuna's reusable sampler tests, Syne Tune's fake-trainer habit):
each runs a real search on the fast fake trainer and must leave the same kind of record."""

import mlflow
import pytest

from jointsearch.search import SearchSettings, read_search, run_search
from jointsearch.search.presets import PRESETS, SCHEDULERS

pytestmark = pytest.mark.slow


def test_every_preset_is_a_known_pairing():
    assert set(SCHEDULERS) == {"bohb", "hyperband", "asha", "random", "tpe", "hpbandster"}
    for preset in PRESETS.values():
        assert preset.searcher in ("bohb", "random", "tpe")
        assert preset.scheduler in ("hyperband_bohb", "hyperband", "asha", "fifo")


@pytest.fixture(scope="module", params=SCHEDULERS)
def preset_search(request, ray_runtime, tmp_path_factory):
    """One small search per preset, shared by the contract's tests."""
    tmp = tmp_path_factory.mktemp(request.param)
    settings = SearchSettings(scheduler=request.param, space="tiny", min_budget=1, max_budget=9, eta=3,
                              num_samples=6, seed=2, mlflow_uri=f"sqlite:///{tmp / 'mlflow.db'}",
                              experiment=f"contract-{request.param}", storage_path=str(tmp / "ray"),
                              trainer="jointsearch.search.testing:fake_trainer")
    summary = run_search(settings)
    return settings, summary, read_search(settings.mlflow_uri, settings.experiment, summary.search_run_id)


class TestPresetContract:
    def test_every_trial_is_recorded_and_closed(self, preset_search):
        settings, summary, results = preset_search
        if settings.scheduler == "hpbandster":  # hpbandster runs whole brackets
            assert summary.n_trials >= settings.num_samples
        else:
            assert summary.n_trials == settings.num_samples
        client = mlflow.MlflowClient(settings.mlflow_uri)
        for trial_id, run_id in results.trial_runs.items():
            run = client.get_run(run_id)
            assert run.info.status == "FINISHED", (trial_id, run.data.tags)
            assert run.data.tags["final_status"] in ("completed", "stopped")

    def test_budgets_follow_the_scheduler(self, preset_search):
        settings, summary, results = preset_search
        assert {r.budget for r in results.records} == {1.0, 3.0, 9.0}
        if settings.scheduler == "random":  # full budget: every configuration reaches the max budget
            assert all(t["final_status"] == "completed" for t in results.trial_tags.values())
        else:  # early stopping: fewer evaluations at the top than at the bottom
            assert summary.evaluations_per_budget[1.0] > summary.evaluations_per_budget[9.0]

    def test_best_is_the_lowest_error_at_the_highest_budget(self, preset_search):
        _, summary, results = preset_search
        top = [r for r in results.records if r.budget == 9.0]
        assert summary.best.val_error == min(r.val_error for r in top)

    def test_promotions_continue_from_checkpoints(self, preset_search):
        settings, _, results = preset_search
        client = mlflow.MlflowClient(settings.mlflow_uri)
        continued = 0
        for run_id in results.trial_runs.values():
            trained = {m.step: m.value for m in client.get_metric_history(run_id, "trained_budget")}
            budgets = sorted(trained)
            for lower, higher in zip(budgets, budgets[1:]):
                assert trained[higher] == higher - lower
                continued += 1
        assert continued >= 1

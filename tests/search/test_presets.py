"""One contract for every preset (Optuna's reusable sampler tests, Syne Tune's fake-trainer habit):
each runs a real search on the fast fake trainer and must leave the same kind of record."""

import mlflow
import pytest

from jointsearch.search import SearchSettings, read_search, run_search
from jointsearch.search.presets import PRESETS, SCHEDULERS

pytestmark = pytest.mark.slow


def _records():
    from jointsearch.dashboards.records import EvaluationRecord
    from jointsearch.spaces import get

    space = get("tiny")
    space.seed(0)
    configs = [dict(c) for c in space.sample_configuration(4)]
    return [EvaluationRecord("a", configs[0], 1.0, 0.4), EvaluationRecord("a", configs[0], 3.0, 0.3),
            EvaluationRecord("b", configs[1], 1.0, 0.6), EvaluationRecord("c", configs[2], 1.0, 0.5),
            EvaluationRecord("d", configs[3], 0.0, float("nan"), status="failed")]


@pytest.mark.parametrize("name", [p.name for p in PRESETS.values() if p.backend == "ray"])
def test_every_ray_preset_builds_warm_starts_and_proposes(name, ray_runtime, make_settings):
    """Each table entry is enough: the preset builds its own pair, learns an interrupted search's
    records, and its searcher proposes a configuration of the space that it says where it came from."""
    from jointsearch.search.ray_presets import proposal_of
    from jointsearch.spaces import get

    preset = PRESETS[name]
    settings = make_settings(scheduler=name, max_concurrent=2)
    searcher, scheduler = preset.build(settings, get("tiny"))
    searcher.set_search_properties("val_error", "min", {})
    taken = preset.warm_start(searcher, scheduler, get("tiny"), _records(), settings)
    assert taken == (4 if name in ("bohb-sync", "hyperband", "asha", "random") else 3 if name == "tpe" else 5)
    config = searcher.suggest("trial-1")
    assert set(config) <= set(get("tiny").keys()) and len(config) >= 1
    assert proposal_of(searcher, "trial-1") in ("model", "random")
    limit = preset.concurrency_limit(settings)
    assert limit == (2 if name == "tpe" else None)


@pytest.fixture(scope="module", params=SCHEDULERS)
def preset_search(request, ray_runtime, tmp_path_factory, fresh_store):
    """One small search per preset, shared by the contract's tests."""
    tmp = tmp_path_factory.mktemp(request.param)
    settings = SearchSettings(scheduler=request.param, space="tiny", min_budget=1, max_budget=9, eta=3,
                              num_samples=6, seed=2, mlflow_uri=fresh_store(tmp / 'mlflow.db'),
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
            assert run.data.tags["proposal"] in ("model", "random")

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


@pytest.mark.parametrize("flag", ["--preset", "--scheduler"])
def test_preset_flag_and_its_old_name(flag, capsys):
    """`--preset` names what the setting holds; `--scheduler` keeps working; a wrong name is one line."""
    from jointsearch.search.cli import _build_parser, main

    assert _build_parser().parse_args(["search", flag, "bohb-sync"]).scheduler == "bohb-sync"
    assert main(["search", flag, "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice: 'nope'" in err[0]


def test_the_old_warm_start_call_still_works_for_the_default_preset(ray_runtime, make_settings):
    """`ray_tune.warm_start(searcher, preset, space, observations, min_budget)` (no scheduler, no
    settings) is what other callers use: the model still learns every record."""
    from jointsearch.search.ray_tune import warm_start
    from jointsearch.spaces import get

    searcher, _ = PRESETS["bohb"].build(make_settings(), get("tiny"))
    assert warm_start(searcher, PRESETS["bohb"], get("tiny"), _records(), 1.0) == 5
    assert searcher.proposer.observations_at(1.0) == 4 and searcher.proposer.observations_at(3.0) == 1

"""Issue 13 in the search layer: the parameter limit (infeasible configurations), the fidelity
protocols as the trainable applies them, and the budget each evaluation really spent."""

import math

import mlflow
import pytest

from jointsearch.search import read_search, run_search
from jointsearch.search.errors import UsageError

pytestmark = pytest.mark.slow


def _children(settings, parent_id):
    client = mlflow.MlflowClient(settings.mlflow_uri)
    exp = client.get_experiment_by_name(settings.experiment)
    return client, client.search_runs([exp.experiment_id],
                                      filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'")


def test_infeasible_configurations_are_recorded_never_trained_and_cost_nothing(ray_runtime, make_settings):
    """A real BOHB search of tiny on digits with the built-in trainer and a 20k-parameter limit:
    the larger networks end as failed runs with failure_kind=infeasible, the reason and their
    count, no evaluation and no budget; the others train and record what they spent."""
    from jointsearch.trainers.models import count_parameters

    settings = make_settings(trainer="jointsearch.trainers.entry:evaluate", min_budget=1, max_budget=3,
                             num_samples=8, max_params=20_000, seed=3)
    summary = run_search(settings)
    client, children = _children(settings, summary.search_run_id)
    assert len(children) == 8
    infeasible = [c for c in children if c.data.tags.get("failure_kind") == "infeasible"]
    trained = [c for c in children if c.data.tags.get("failure_kind") != "infeasible"]
    assert infeasible and trained, "the limit should split this sample"
    results = read_search(settings.mlflow_uri, settings.experiment)
    for child in infeasible:
        assert child.info.status == "FAILED" and child.data.tags["final_status"] == "failed"
        assert "exceed the limit of 20,000" in child.data.tags["failure_reason"]
        assert int(child.data.tags["n_params"]) > 20_000
        assert not client.get_metric_history(child.info.run_id, "val_error")  # never evaluated
        config = {k: float(v) for k, v in child.data.params.items()}
        assert count_parameters(config, 1, 10) > 20_000
    for child in trained:
        spent = client.get_metric_history(child.info.run_id, "budget_spent")
        budgets = sorted(m.step for m in spent)
        assert budgets and {m.step: m.value for m in spent} == {  # restarts: continued, pays the difference
            b: b - (budgets[i - 1] if i else 0) for i, b in enumerate(budgets)}
    ids = {c.data.tags["jointsearch.trial_id"] for c in infeasible}
    records_of_infeasible = [r for r in results.records if r.trial_id in ids]
    assert len(records_of_infeasible) == len(ids)
    assert all(r.budget == 0 and not r.ok for r in records_of_infeasible)  # no budget charged


def test_scratch_protocol_passes_no_checkpoint_and_pays_every_rung(ray_runtime, make_settings):
    """Under --fidelity scratch the trainable never hands the trainer a checkpoint: the fake
    trainer trains every rung from 0, and budget_spent says it paid each whole budget."""
    settings = make_settings(fidelity="scratch", num_samples=9)
    summary = run_search(settings)
    client, children = _children(settings, summary.search_run_id)
    promoted = 0
    for child in children:
        trained = {m.step: m.value for m in client.get_metric_history(child.info.run_id, "trained_budget")}
        spent = {m.step: m.value for m in client.get_metric_history(child.info.run_id, "budget_spent")}
        resumed = {m.step: m.value for m in client.get_metric_history(child.info.run_id, "resumed_from")}
        assert trained == spent == {b: float(b) for b in trained}
        assert set(resumed.values()) == {0.0}
        promoted += len(trained) - 1
    assert promoted >= 2
    from jointsearch.dashboards.analysis import budget_spent

    records = read_search(settings.mlflow_uri, settings.experiment).records
    assert budget_spent(records).total_budget == sum(r.budget for r in records)


def test_bad_protocol_settings_are_usage_errors(make_settings):
    with pytest.raises(UsageError, match="--fidelity"):
        make_settings(fidelity="sometimes").validate()
    with pytest.raises(UsageError, match="--max-params"):
        make_settings(max_params=-1).validate()


def test_trainer_context_carries_protocol_rungs_and_limit(make_settings):
    context = make_settings(fidelity="continue", max_params=123).trainer_context()
    assert context["fidelity"] == "continue" and context["max_params"] == 123
    assert context["rungs"] == (1.0, 3.0, 9.0)
    assert make_settings().fidelity == "restarts" and make_settings().max_params == 50_000_000
    assert math.isfinite(context["max_budget"])

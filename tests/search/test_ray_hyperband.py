"""search/ray_hyperband.py: a trial that fails at its Hyperband bracket's last milestone no longer
leaves the trials that waited for it paused for ever (Ray's scheduler never processed the bracket again)."""

import mlflow
import pytest

from jointsearch.search import read_search, run_search

pytestmark = pytest.mark.slow


@pytest.mark.timeout(240)  # Ray's own HyperBandScheduler waits here for ever: this fails by timing out
def test_a_failure_at_a_brackets_last_milestone_ends_the_bracket_instead_of_waiting_for_ever(make_settings,
                                                                                              ray_runtime):
    # Seed 2 draws 6 configurations: 3 in the bracket that runs them to budget 9, then 3 in the
    # one that halves them at 3 and keeps 2 for 9. In each, one configuration fails at 9 (every
    # 2nd by hash), 4 s late, so that the others are already paused at 9, waiting for it.
    settings = make_settings(scheduler="hyperband", num_samples=6, seed=2, experiment="late-failure",
                             trainer="jointsearch.search.testing:faulty_trainer",
                             trainer_kwargs={"fault": "raise", "fault_every": 2, "fault_budget": 3,
                                             "fault_delay_s": 4})
    summary = run_search(settings)

    results = read_search(settings.mlflow_uri, settings.experiment, summary.search_run_id)
    client = mlflow.MlflowClient(settings.mlflow_uri)
    runs = {tid: client.get_run(rid) for tid, rid in results.trial_runs.items()}
    reached = {(r.trial_id, r.budget) for r in results.records if r.status == "ok"}
    failed_late = [tid for tid, run in runs.items()
                   if run.data.tags.get("final_status") == "failed" and (tid, 3.0) in reached]
    assert failed_late, "the scenario needs a configuration that fails at 9 after its result at 3"
    assert len(failed_late) == 2
    assert summary.n_trials == 6
    assert summary.evaluations_per_budget[9.0] == 3  # 2 of the first bracket, 1 of the halved one
    for tid, run in runs.items():
        if tid not in failed_late:
            assert run.info.status == "FINISHED" and run.data.tags["final_status"] in ("completed", "stopped")

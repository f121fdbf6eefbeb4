"""Trials that raise, diverge or run out of memory are recorded as failed, with the reason, and
the search goes on; a transient failure is retried up to --max-failures."""

import mlflow
import pytest

from jointsearch.search import read_search, run_search

pytestmark = pytest.mark.slow


def _search(make_settings, tmp_path, **kwargs):
    settings = make_settings(trainer="jointsearch.search.testing:faulty_trainer", num_samples=6, **kwargs)
    summary = run_search(settings)
    results = read_search(settings.mlflow_uri, settings.experiment, summary.search_run_id)
    client = mlflow.MlflowClient(settings.mlflow_uri)
    runs = {tid: client.get_run(rid) for tid, rid in results.trial_runs.items()}
    return summary, results, runs


@pytest.mark.parametrize("fault, kind, text", [
    ("raise", "exception", "injected failure"),
    ("nan", "diverged", "non-finite"),
    ("diverged", "diverged", "non-finite"),
    ("oom", "oom", "out of memory"),
])
def test_failed_trials_are_recorded_with_their_reason_and_the_search_goes_on(make_settings, tmp_path, ray_runtime,
                                                                             fault, kind, text):
    summary, results, runs = _search(make_settings, tmp_path, trainer_kwargs={"fault": fault, "fault_every": 3},
                                     experiment=f"fault-{fault}", scheduler="random", max_budget=3)
    failed = [r for r in runs.values() if r.data.tags.get("final_status") == "failed"]
    assert summary.n_trials == 6
    assert 1 <= len(failed) < 6
    for run in failed:
        assert run.info.status == "FAILED"
        assert run.data.tags["failure_kind"] == kind
        assert text in run.data.tags["failure_reason"]
    assert summary.failed_trials == len(failed)
    assert summary.best is not None  # the search went on past the failures
    assert all(r.info.status == "FINISHED" for r in runs.values() if r.data.tags.get("final_status") != "failed")
    # Read back, each failed trial's last evaluation keeps the status it was recorded with: a
    # finite error reported as "diverged" is not "ok" (and so never the best configuration).
    by_trial = {}
    for record in results.records:
        by_trial.setdefault(record.trial_id, []).append(record)
    failed_ids = {tid for tid, run in runs.items() if run.data.tags.get("final_status") == "failed"}
    for tid in failed_ids:
        last = max(by_trial[tid], key=lambda r: r.budget)
        assert last.status == (kind if fault in ("nan", "diverged") else "failed")
    assert summary.best.trial_id not in failed_ids


def test_a_transient_failure_is_retried_and_then_succeeds(make_settings, tmp_path, ray_runtime):
    markers = tmp_path / "markers"
    markers.mkdir()
    summary, results, runs = _search(make_settings, tmp_path, max_failures=1, scheduler="random", max_budget=3,
                                     experiment="flaky",
                                     trainer_kwargs={"fault": "flaky", "fault_every": 3, "marker_dir": str(markers)})
    assert list(markers.iterdir())  # some configurations did fail once
    retried = [r for r in runs.values() if r.data.tags.get("retries") == "1"]
    assert retried
    assert all(r.data.tags["final_status"] == "completed" for r in runs.values())
    assert summary.failed_trials == 0

"""--eval-timeout: an evaluation that runs longer is stopped, recorded FAILED with
failure_kind=timeout, and its slot is freed so that the search ends."""

import threading
import time

import mlflow
import pytest

from jointsearch.search import read_search, run_search
from jointsearch.search.eval_timeout import EvaluationTimeout, call_with_timeout, timeout_for


def test_the_default_limit_is_a_multiple_of_a_time_budget_and_none_for_epochs():
    assert timeout_for(400, "seconds", None) == 2 * 400 + 60
    assert timeout_for(3, "epochs", None) == 0
    assert timeout_for(3, "epochs", 12.5) == 12.5 and timeout_for(400, "seconds", 0) == 0


def test_a_call_within_its_limit_returns_and_its_errors_propagate():
    assert call_with_timeout(5, lambda x: x + 1, 1) == 2
    assert call_with_timeout(0, lambda: threading.current_thread().name) == threading.current_thread().name
    with pytest.raises(ZeroDivisionError):
        call_with_timeout(5, lambda: 1 / 0)


def test_a_call_past_its_limit_raises_evaluation_timeout_promptly():
    started = time.monotonic()
    with pytest.raises(EvaluationTimeout, match="--eval-timeout 0.3 s"):
        call_with_timeout(0.3, time.sleep, 30, exit_on_timeout=False)
    assert time.monotonic() - started < 5


@pytest.mark.slow
def test_hanging_evaluations_are_failed_as_timeouts_and_the_search_ends(make_settings, ray_runtime):
    settings = make_settings(trainer="jointsearch.search.testing:hanging_trainer", scheduler="random",
                             num_samples=6, min_budget=1, max_budget=3, eval_timeout=3.0, experiment="timeouts",
                             trainer_kwargs={"hang_every": 2, "hang_budget": 1.0})
    summary = run_search(settings)  # without the limit this never returns
    results = read_search(settings.mlflow_uri, settings.experiment, summary.search_run_id)
    client = mlflow.MlflowClient(settings.mlflow_uri)
    runs = {tid: client.get_run(rid) for tid, rid in results.trial_runs.items()}
    timed_out = [r for r in runs.values() if r.data.tags.get("failure_kind") == "timeout"]
    finished = [r for r in runs.values() if r.data.tags.get("final_status") == "completed"]
    assert timed_out and finished, {t: r.data.tags.get("final_status") for t, r in runs.items()}
    for run in timed_out:
        assert run.info.status == "FAILED" and "eval-timeout" in run.data.tags["failure_reason"]
        assert run.data.metrics.get("budget") == 1.0  # the rung before the hang was kept
    assert summary.n_trials == 6

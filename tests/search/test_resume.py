"""A search killed hard in the middle (SIGKILL) continues with `jointsearch search --resume`, for
every scheduler: no finished evaluation runs again, no MLflow run is duplicated or left RUNNING,
and the searcher starts from what it had learned."""

import collections
import os
import signal
import subprocess
import sys
import time

import mlflow
import pytest

from jointsearch.search import read_search
from jointsearch.search.presets import SCHEDULERS
from jointsearch.search.tracking import config_id

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "jointsearch.search.cli"]
NUM_SAMPLES = 12


def _evaluations(uri, experiment):
    try:
        return read_search(uri, experiment).records
    except Exception:  # the store or the experiment does not exist yet
        return []


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_killed_search_resumes_without_repeating_work(scheduler, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = f"resume-{scheduler}"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "JOINTSEARCH_HEARTBEAT_S": "1",
           "JOINTSEARCH_FAKE_SLEEP_S": "0.4"}
    args = ["search", "--scheduler", scheduler, "--trainer", "jointsearch.search.testing:fake_trainer",
            "--num-samples", str(NUM_SAMPLES), "--min-budget", "1", "--max-budget", "9", "--eta", "3",
            "--seed", "5", "--experiment", experiment, "--mlflow-uri", uri,
            "--storage-path", str(tmp_path / "ray"), "--max-concurrent", "2"]
    driver = subprocess.Popen([*CLI, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.time() + 180
        # Reading the SQLite store before the driver has created its tables would race with the
        # driver's own migration; Tune's storage folder appears only after the tracker started.
        while not (tmp_path / "ray").exists() or len(_evaluations(uri, experiment)) < 5:
            assert driver.poll() is None, driver.stdout.read()[-3000:]
            assert time.time() < deadline, "the search never got going"
            time.sleep(0.5)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray runtime it started, no clean-up
        driver.wait(timeout=60)

    before = read_search(uri, experiment)
    assert before.status == "RUNNING" and 0 < len(before.trial_runs) < NUM_SAMPLES + 4
    kept = {(r.trial_id, r.budget) for r in before.records}
    time.sleep(3.5)  # let the dead driver's heartbeat go stale (3 intervals)

    # Two ways back: `--resume` (the recorded settings), or, for one preset, the same command again.
    again = [*CLI, *args] if scheduler == "asha" else [*CLI, "search", "--resume", "--experiment", experiment,
                                                        "--mlflow-uri", uri]
    resumed = subprocess.run(again, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed search {before.search_run_id}" in resumed.stdout

    after = read_search(uri, experiment)
    assert after.search_run_id == before.search_run_id and after.status == "FINISHED"
    assert kept <= {(r.trial_id, r.budget) for r in after.records}  # nothing recorded was lost
    per_config_budget = collections.Counter((config_id(r.config), r.budget) for r in after.records)
    duplicates = sum(n - 1 for n in per_config_budget.values() if n > 1)
    repeated = [(r.trial_id, r.budget, r.trial_id in before.trial_runs) for r in after.records
                if per_config_budget[(config_id(r.config), r.budget)] > 1]
    assert duplicates == 0, repeated
    if scheduler == "hpbandster":
        assert len(after.trial_runs) >= NUM_SAMPLES
    else:
        assert len(after.trial_runs) == max(NUM_SAMPLES, len(before.trial_runs))
    client = mlflow.MlflowClient(uri)
    statuses = collections.Counter(client.get_run(run_id).info.status for run_id in after.trial_runs.values())
    assert statuses["RUNNING"] == 0, statuses
    interrupted = [t for t, tags in before.trial_tags.items() if not tags.get("final_status")]
    for trial_id in interrupted:
        assert after.trial_tags[trial_id]["final_status"] == "interrupted"
    observations = client.get_metric_history(after.search_run_id, "resumed_observations")
    assert [m.value for m in observations] == [len(before.records)]
    print(f"{scheduler}: evaluations before kill {len(before.records)}, after resume {len(after.records)}, "
          f"duplicates {duplicates}, interrupted trials {len(interrupted)}")
